include_guard(GLOBAL)
include(CMakePackageConfigHelpers)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/medfair" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS ${MEDFAIR_EXPORTED_TARGETS} EXPORT medfairTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
set(_medfair_cmake_dir "${CMAKE_INSTALL_LIBDIR}/cmake/medfair")
install(EXPORT medfairTargets NAMESPACE medfair:: DESTINATION "${_medfair_cmake_dir}")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/medfairConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/medfairConfig.cmake" INSTALL_DESTINATION "${_medfair_cmake_dir}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/medfairConfigVersion.cmake" COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/medfairConfig.cmake" "${PROJECT_BINARY_DIR}/medfairConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/MedfairDependencies.cmake" DESTINATION "${_medfair_cmake_dir}")
