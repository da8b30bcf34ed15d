# sluice_add_plugin(<name> SOURCES <src>... [LINK <lib>...] [OUTPUT_DIR <dir>] [NO_INSTALL])
#
# Builds <name>.so, a Sluice plugin, linked against Sluice::sdk. The same function builds
# every in-tree plugin and every third-party one (find_package(SluiceSDK)).
#
# Symbols keep default visibility on purpose: template statics of Asio that a plugin
# instantiates must bind to the single copy in libsluice_sdk (ELF interposition), so the
# plugin shares the kernel's Asio implementation and io_context services.
include_guard(GLOBAL)

function(sluice_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sluice_add_plugin(${name}): SOURCES is required")
  endif()
  if(DEFINED SLUICE_SDK_CXX_COMPILER_ID AND
     NOT CMAKE_CXX_COMPILER_ID STREQUAL SLUICE_SDK_CXX_COMPILER_ID)
    message(FATAL_ERROR "sluice_add_plugin(${name}): this SDK was built with "
      "${SLUICE_SDK_CXX_COMPILER_ID}, this project uses ${CMAKE_CXX_COMPILER_ID}; sluice refuses "
      "plugins of another compiler family (build key). Configure with "
      "-DCMAKE_CXX_COMPILER=${SLUICE_SDK_CXX_COMPILER}")
  endif()
  set(target sluice_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE Sluice::sdk ${ARG_LINK})
  target_compile_features(${target} PRIVATE cxx_std_20)
  if(ARG_OUTPUT_DIR)
    set(out ${ARG_OUTPUT_DIR})
  elseif(DEFINED SLUICE_PLUGIN_OUTPUT_DIR)
    set(out ${SLUICE_PLUGIN_OUTPUT_DIR})
  else()
    set(out ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    LIBRARY_OUTPUT_DIRECTORY ${out})
  # Refuse undefined symbols at link time rather than at dlopen time (except under
  # sanitizers, whose runtime lives in the executable).
  if(NOT SLUICE_PLUGIN_ALLOW_UNDEFINED)
    target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  endif()
  # Test-only plugins pass NO_INSTALL so an installation never carries them.
  if(NOT ARG_NO_INSTALL)
    include(GNUInstallDirs)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/sluice/plugins)
  endif()
endfunction()
