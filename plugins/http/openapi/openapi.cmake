# openapi.cmake — what a target compiling the API handler sources (the HTTP plugin, the
# handler tests) needs besides the server core:
#
#   include(${PROJECT_SOURCE_DIR}/plugins/http/openapi/openapi.cmake)
#   sluice_http_api_setup(<target>)   # GMime, gdk-pixbuf, OpenSSL, embedded OpenAPI
#
# sluice_http_embed_openapi(<target>) alone embeds openapi.json as the header
# <sluice_http_openapi.hpp>.
# The header is regenerated when openapi.json changes; api_misc.cpp serves it at
# GET /api/v1/swagger.json with the server URL of the requested mailbox.
set(SLUICE_HTTP_OPENAPI_DIR ${CMAKE_CURRENT_LIST_DIR} CACHE INTERNAL "")

function(sluice_http_embed_openapi target)
  set(src ${SLUICE_HTTP_OPENAPI_DIR}/openapi.json)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_openapi)
  set(out ${out_dir}/sluice_http_openapi.hpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${src} -DOUTPUT=${out} -P ${SLUICE_HTTP_OPENAPI_DIR}/embed.cmake
    DEPENDS ${src} ${SLUICE_HTTP_OPENAPI_DIR}/embed.cmake
    COMMENT "Embedding the OpenAPI document into ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
  target_include_directories(${target} PRIVATE ${out_dir})
endfunction()

function(sluice_http_api_setup target)
  pkg_check_modules(GDK_PIXBUF REQUIRED IMPORTED_TARGET gdk-pixbuf-2.0)
  target_link_libraries(${target} PRIVATE PkgConfig::GMIME PkgConfig::GDK_PIXBUF OpenSSL::Crypto)
  sluice_http_embed_openapi(${target})
endfunction()
