# wasi_gpu_add_guest(): a C or C++ wasi:gpu guest, built as a runnable WASI command component.
#
#   wasi_gpu_add_guest(<target> SOURCES <file>... [COMPONENT <path>] [STACK_SIZE <bytes>])
#
# <target> is an ordinary executable target (the wasm32-wasi core module `<target>.core.wasm`):
# link libraries to it as usual (`target_link_libraries(<target> PRIVATE wasi_gpu::forest)`).
# The function links wasi_gpu::bindings, compiles include/wasi_gpu_start.c in, and sets what a
# guest needs (`-fno-exceptions -fno-rtti`, `-nostartfiles -Wl,--no-entry`, a 1 MiB stack;
# include/README.md says why). A second target, `<target>-component` (built by `all`), turns the
# core module into the component COMPONENT (default `${CMAKE_CURRENT_BINARY_DIR}/<target>.wasm`),
# which `wasmtime-gpu-host run` runs; the target property WASI_GPU_COMPONENT holds its path.
#
# Componentizing needs one of (checked at configure time, the first time the function is called):
#   * `wasmtime-gpu-host` with its `componentize` subcommand: the cache variable WASI_GPU_HOST,
#     else found on PATH (or next to a checkout's target/release, or in <prefix>/bin);
#   * `wasm-tools` (https://github.com/bytecodealliance/wasm-tools): WASI_GPU_WASM_TOOLS, else
#     PATH; it gets the wasi_snapshot_preview1 command adapter this package carries.
# WASI_GPU_COMPONENTIZER (auto | host | wasm-tools; default auto: the host first) picks one.
# Either way the component is checked to import wasi:gpu/compute at this package's version.
#
# Loaded by the top-level CMakeLists.txt (in-tree, add_subdirectory, FetchContent) and by the
# installed wasi_gpuConfig.cmake; each calls _wasi_gpu_setup() with its own file locations.
include_guard(GLOBAL)

# _wasi_gpu_header_version(<wasi_gpu.h> <out-var>): the WIT package version the header records
# (`#define WASI_GPU_WIT_PACKAGE "wasi:gpu@X.Y.Z"`, written by `cargo xtask bindgen`), or "".
function(_wasi_gpu_header_version header out)
  set(version "")
  if(EXISTS "${header}")
    file(STRINGS "${header}" line REGEX "^#define WASI_GPU_WIT_PACKAGE ")
    if(line MATCHES "\"wasi:gpu@([^\"]+)\"")
      set(version "${CMAKE_MATCH_1}")
    endif()
  endif()
  set(${out} "${version}" PARENT_SCOPE)
endfunction()

# _wasi_gpu_setup(VERSION v HEADER h START_SOURCE c ADAPTER a [HOST_HINTS dir...] [ERROR_VARIABLE var])
# Checks that the header was generated from wasi:gpu@<v> and records where the files are. A
# mismatch is a fatal error, or, with ERROR_VARIABLE, a message in that variable.
function(_wasi_gpu_setup)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "VERSION;HEADER;START_SOURCE;ADAPTER;ERROR_VARIABLE" "HOST_HINTS")
  _wasi_gpu_header_version("${arg_HEADER}" found)
  set(error "")
  if(found STREQUAL "")
    set(error "${arg_HEADER} records no WIT version (no `#define WASI_GPU_WIT_PACKAGE`): it is missing, or was generated before versions were recorded. Use the wasi_gpu.h of this package (wasi:gpu@${arg_VERSION}); `cargo xtask bindgen` regenerates it in a checkout.")
  elseif(NOT found STREQUAL arg_VERSION)
    set(error "${arg_HEADER} was generated from wasi:gpu@${found}, but this package is wasi:gpu@${arg_VERSION}: headers of two versions must not be mixed. Install the package again from one checkout, or run `cargo xtask bindgen` after changing wit/.")
  endif()
  if(error)
    if(arg_ERROR_VARIABLE)
      set(${arg_ERROR_VARIABLE} "${error}" PARENT_SCOPE)
      return()
    endif()
    message(FATAL_ERROR "wasi_gpu: ${error}")
  endif()
  if(arg_ERROR_VARIABLE)
    set(${arg_ERROR_VARIABLE} "" PARENT_SCOPE)
  endif()
  set_property(GLOBAL PROPERTY WASI_GPU_VERSION "${arg_VERSION}")
  set_property(GLOBAL PROPERTY WASI_GPU_START_SOURCE "${arg_START_SOURCE}")
  set_property(GLOBAL PROPERTY WASI_GPU_PREVIEW1_ADAPTER "${arg_ADAPTER}")
  set_property(GLOBAL PROPERTY WASI_GPU_HOST_HINTS "${arg_HOST_HINTS}")
endfunction()

# Whether `program` runs `args...` successfully (output discarded).
function(_wasi_gpu_runs out program)
  execute_process(COMMAND "${program}" ${ARGN} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET TIMEOUT 60)
  if(rc EQUAL 0)
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# Picks the componentizer once per configure; sets the global property WASI_GPU_COMPONENTIZER
# to `host` or `wasm-tools`, or stops with what is missing and how to get it.
function(_wasi_gpu_find_componentizer caller)
  get_property(chosen GLOBAL PROPERTY WASI_GPU_COMPONENTIZER)
  if(chosen)
    return()
  endif()
  set(WASI_GPU_COMPONENTIZER "auto" CACHE STRING "What turns guests' core modules into components: auto (wasmtime-gpu-host, else wasm-tools), host or wasm-tools")
  set_property(CACHE WASI_GPU_COMPONENTIZER PROPERTY STRINGS auto host wasm-tools)
  set(mode "${WASI_GPU_COMPONENTIZER}")
  if(NOT mode MATCHES "^(auto|host|wasm-tools)$")
    message(FATAL_ERROR "wasi_gpu: WASI_GPU_COMPONENTIZER is `${mode}`; use auto, host or wasm-tools")
  endif()
  get_property(version GLOBAL PROPERTY WASI_GPU_VERSION)
  get_property(hints GLOBAL PROPERTY WASI_GPU_HOST_HINTS)
  get_property(adapter GLOBAL PROPERTY WASI_GPU_PREVIEW1_ADAPTER)
  set(problems "")

  if(mode STREQUAL "auto" OR mode STREQUAL "host")
    find_program(WASI_GPU_HOST NAMES wasmtime-gpu-host HINTS ${hints}
                 DOC "wasmtime-gpu-host, which runs wasi:gpu guests and componentizes C/C++ ones (`componentize`)")
    if(WASI_GPU_HOST AND NOT EXISTS "${WASI_GPU_HOST}")
      list(APPEND problems "WASI_GPU_HOST=${WASI_GPU_HOST} does not exist")
    elseif(WASI_GPU_HOST)
      _wasi_gpu_runs(ok "${WASI_GPU_HOST}" componentize --help)
      if(ok)
        set_property(GLOBAL PROPERTY WASI_GPU_COMPONENTIZER host)
        message(STATUS "wasi_gpu: componentizing guests with ${WASI_GPU_HOST} componentize")
        return()
      endif()
      list(APPEND problems "WASI_GPU_HOST=${WASI_GPU_HOST} has no `componentize` subcommand (an earlier release, or not wasmtime-gpu-host): use the host built from the checkout this package (wasi:gpu@${version}) comes from")
    else()
      list(APPEND problems "wasmtime-gpu-host is not on PATH and WASI_GPU_HOST is not set")
    endif()
  endif()

  if(mode STREQUAL "auto" OR mode STREQUAL "wasm-tools")
    find_program(WASI_GPU_WASM_TOOLS NAMES wasm-tools DOC "wasm-tools, for `wasm-tools component new`")
    if(WASI_GPU_WASM_TOOLS AND NOT EXISTS "${WASI_GPU_WASM_TOOLS}")
      list(APPEND problems "WASI_GPU_WASM_TOOLS=${WASI_GPU_WASM_TOOLS} does not exist")
    elseif(WASI_GPU_WASM_TOOLS)
      _wasi_gpu_runs(ok "${WASI_GPU_WASM_TOOLS}" component new --help)
      if(NOT ok)
        list(APPEND problems "WASI_GPU_WASM_TOOLS=${WASI_GPU_WASM_TOOLS} does not run `component new` (a wasm-tools built without the `component` feature?)")
      elseif(NOT EXISTS "${adapter}")
        list(APPEND problems "the preview-1 adapter ${adapter} is missing (`cargo xtask bindgen` writes it in a checkout)")
      else()
        set_property(GLOBAL PROPERTY WASI_GPU_COMPONENTIZER wasm-tools)
        message(STATUS "wasi_gpu: componentizing guests with ${WASI_GPU_WASM_TOOLS} component new")
        return()
      endif()
    else()
      list(APPEND problems "wasm-tools is not on PATH and WASI_GPU_WASM_TOOLS is not set")
    endif()
  endif()

  list(JOIN problems "\n    " problems)
  message(FATAL_ERROR
    "wasi_gpu_add_guest(${caller}): nothing can turn the guest's core module into a component "
    "(WASI_GPU_COMPONENTIZER=${mode}):\n    ${problems}\n"
    "Get one of:\n"
    "  * wasmtime-gpu-host (it also runs the guests): in a wasi:gpu checkout, `cargo build --release -p wasmtime-gpu-host`, "
    "then put target/release on PATH or configure with -DWASI_GPU_HOST=/path/to/wasmtime-gpu-host;\n"
    "  * wasm-tools: `cargo install --locked wasm-tools` or a release binary from "
    "https://github.com/bytecodealliance/wasm-tools/releases, on PATH or -DWASI_GPU_WASM_TOOLS=/path/to/wasm-tools.")
endfunction()

function(wasi_gpu_add_guest target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "COMPONENT;STACK_SIZE" "SOURCES")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "wasi_gpu_add_guest(${target}): unexpected arguments `${arg_UNPARSED_ARGUMENTS}`; usage: wasi_gpu_add_guest(<target> SOURCES <file>... [COMPONENT <path>] [STACK_SIZE <bytes>])")
  endif()
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "wasi_gpu_add_guest(${target}): no SOURCES")
  endif()
  if(NOT CMAKE_SYSTEM_NAME STREQUAL "WASI")
    message(FATAL_ERROR "wasi_gpu_add_guest(${target}): guests are wasm32-wasi programs; configure with -DCMAKE_TOOLCHAIN_FILE=<the wasm32-wasi.cmake of the wasi_gpu package>")
  endif()
  get_property(start GLOBAL PROPERTY WASI_GPU_START_SOURCE)
  get_property(version GLOBAL PROPERTY WASI_GPU_VERSION)
  if(NOT start OR NOT TARGET wasi_gpu::bindings)
    message(FATAL_ERROR "wasi_gpu_add_guest(${target}): load the package first: find_package(wasi_gpu CONFIG REQUIRED), or add_subdirectory / FetchContent of a wasi:gpu checkout")
  endif()
  if(NOT CMAKE_C_COMPILER_LOADED)
    message(FATAL_ERROR "wasi_gpu_add_guest(${target}): guests compile wasi_gpu_start.c, so C must be enabled: project(<name> C CXX)")
  endif()
  _wasi_gpu_find_componentizer(${target})
  get_property(componentizer GLOBAL PROPERTY WASI_GPU_COMPONENTIZER)
  if(NOT arg_COMPONENT)
    set(arg_COMPONENT "${CMAKE_CURRENT_BINARY_DIR}/${target}.wasm")
  endif()
  if(NOT arg_STACK_SIZE)
    set(arg_STACK_SIZE 1048576)
  endif()

  add_executable(${target} ${arg_SOURCES} "${start}")
  target_link_libraries(${target} PRIVATE wasi_gpu::bindings)
  # No exceptions and no RTTI: the wasm32-wasi libc++ has neither, and the headers need neither.
  target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions;-fno-rtti>")
  # Our `_start` (include/wasi_gpu_start.c) instead of wasi-libc's: see include/README.md.
  target_link_options(${target} PRIVATE -nostartfiles -Wl,--no-entry -Wl,-z,stack-size=${arg_STACK_SIZE})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME "${target}.core" SUFFIX ".wasm"
                        WASI_GPU_COMPONENT "${arg_COMPONENT}")

  if(componentizer STREQUAL "host")
    set(command "${WASI_GPU_HOST}" componentize "$<TARGET_FILE:${target}>" -o "${arg_COMPONENT}")
    set(tool "${WASI_GPU_HOST}")
  else()
    get_property(adapter GLOBAL PROPERTY WASI_GPU_PREVIEW1_ADAPTER)
    set(command "${CMAKE_COMMAND}" "-DWASM_TOOLS=${WASI_GPU_WASM_TOOLS}" "-DCORE=$<TARGET_FILE:${target}>"
                "-DADAPTER=${adapter}" "-DOUT=${arg_COMPONENT}" "-DREQUIRED_IMPORT=wasi:gpu/compute@${version}"
                -P "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/wasi_gpu_componentize.cmake")
    set(tool "${WASI_GPU_WASM_TOOLS}" "${adapter}")
  endif()
  add_custom_command(OUTPUT "${arg_COMPONENT}"
    COMMAND ${command}
    DEPENDS ${target} ${tool}
    COMMENT "Componentizing ${target} (wasi:gpu@${version}) into ${arg_COMPONENT}"
    VERBATIM)
  add_custom_target(${target}-component ALL DEPENDS "${arg_COMPONENT}")
endfunction()
