include_guard(GLOBAL)

# medfair_add_layer(NAME DEPENDS <public deps> PRIVATE_DEPENDS <private deps>)
#
# Declares the library medfair_NAME (alias medfair::NAME) from every source in
# src/NAME/, with the public headers in include/medfair/.
function(medfair_add_layer name)
  cmake_parse_arguments(ARG "" "" "DEPENDS;PRIVATE_DEPENDS" ${ARGN})
  file(GLOB _sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/src/${name}/*.cpp")
  if(NOT _sources)
    # A layer with headers only is an interface library.
    add_library(medfair_${name} INTERFACE)
    add_library(medfair::${name} ALIAS medfair_${name})
    set_target_properties(medfair_${name} PROPERTIES EXPORT_NAME ${name})
    target_include_directories(medfair_${name} INTERFACE
      $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    target_link_libraries(medfair_${name} INTERFACE ${ARG_DEPENDS})
    return()
  endif()
  add_library(medfair_${name} ${_sources})
  add_library(medfair::${name} ALIAS medfair_${name})
  set_target_properties(medfair_${name} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(medfair_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(medfair_${name} PUBLIC cxx_std_20)
  target_compile_definitions(medfair_${name} PRIVATE FMT_HEADER_ONLY=1)
  target_compile_options(medfair_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  target_link_libraries(medfair_${name} PUBLIC ${ARG_DEPENDS} PRIVATE ${ARG_PRIVATE_DEPENDS})
endfunction()

# medfair_add_test_suite(LAYER)
#
# Builds tests/cpp/LAYER/*.cpp into the Catch2 executable medfair_test_LAYER
# and registers it with CTest.
function(medfair_add_test_suite layer)
  file(GLOB _tests CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/${layer}/*.cpp")
  if(NOT _tests)
    return()
  endif()
  add_executable(medfair_test_${layer} ${_tests})
  target_link_libraries(medfair_test_${layer} PRIVATE medfair_test_main medfair::${layer} ${ARGN})
  target_compile_definitions(medfair_test_${layer} PRIVATE FMT_HEADER_ONLY=1)
  add_test(NAME ${layer} COMMAND medfair_test_${layer})
endfunction()
