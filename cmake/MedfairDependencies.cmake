# Finds medfair's third-party dependencies. The installed CMake package includes
# this same file, so a consumer resolves them exactly as the build did.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt 9 REQUIRED)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(Boost 1.74 REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# SQLite: the generation cache of the preference builder.
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET GLOBAL libpcre2-8)
pkg_check_modules(SentencePiece REQUIRED IMPORTED_TARGET GLOBAL sentencepiece)
# ICU: Unicode normalization, case mapping and character categories for WordPiece.
find_package(ICU 70 REQUIRED COMPONENTS uc)

# libcsv (Debian's libcsv-dev) ships only a header and a static archive.
if(NOT TARGET medfair_csv)
  find_path(MEDFAIR_CSV_INCLUDE_DIR csv.h REQUIRED)
  find_library(MEDFAIR_CSV_LIBRARY NAMES libcsv.a csv REQUIRED)
  add_library(medfair_csv UNKNOWN IMPORTED GLOBAL)
  set_target_properties(medfair_csv PROPERTIES
    IMPORTED_LOCATION "${MEDFAIR_CSV_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${MEDFAIR_CSV_INCLUDE_DIR}")
endif()

if(MEDFAIR_WITH_TORCH)
  # libtorch: from Torch_DIR or CMAKE_PREFIX_PATH when given, otherwise from the
  # torch wheel of the Python interpreter that CMake finds.
  if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
    find_package(Python3 COMPONENTS Interpreter)
    if(Python3_Interpreter_FOUND)
      execute_process(
        COMMAND "${Python3_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
        OUTPUT_VARIABLE _medfair_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE _medfair_torch_rc ERROR_QUIET)
      if(_medfair_torch_rc EQUAL 0)
        list(APPEND CMAKE_PREFIX_PATH "${_medfair_torch_prefix}")
      endif()
    endif()
  endif()
  find_package(Torch REQUIRED)
endif()
