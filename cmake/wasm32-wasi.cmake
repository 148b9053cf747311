# Toolchain file for wasm32-wasi (WASI preview 1 core modules, componentized afterwards
# by wasi_gpu_add_guest, cmake/wasi_gpu_guest.cmake). Uses the official WASI SDK when
# WASI_SDK_PATH is set, otherwise Debian's clang-19 / lld-19 with the wasi-libc + libc++
# sysroot installed under /usr. `cmake --install` puts it beside wasi_gpuConfig.cmake
# (<prefix>/lib/cmake/wasi_gpu/), where it also makes that prefix's package findable.
set(CMAKE_SYSTEM_NAME WASI)
list(APPEND CMAKE_MODULE_PATH "${CMAKE_CURRENT_LIST_DIR}")
if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/wasi_gpuConfig.cmake")
  get_filename_component(_wasi_gpu_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  list(APPEND CMAKE_PREFIX_PATH "${_wasi_gpu_prefix}")
endif()
set(CMAKE_SYSTEM_VERSION 1)
set(CMAKE_SYSTEM_PROCESSOR wasm32)
set(WASI_TARGET wasm32-wasi)

if(DEFINED ENV{WASI_SDK_PATH} AND NOT "$ENV{WASI_SDK_PATH}" STREQUAL "")
  set(WASI_SDK_PATH "$ENV{WASI_SDK_PATH}")
  set(CMAKE_C_COMPILER "${WASI_SDK_PATH}/bin/clang")
  set(CMAKE_CXX_COMPILER "${WASI_SDK_PATH}/bin/clang++")
  set(CMAKE_AR "${WASI_SDK_PATH}/bin/llvm-ar" CACHE FILEPATH "archiver")
  set(CMAKE_RANLIB "${WASI_SDK_PATH}/bin/llvm-ranlib" CACHE FILEPATH "ranlib")
  set(CMAKE_SYSROOT "${WASI_SDK_PATH}/share/wasi-sysroot")
  set(WASI_TARGET wasm32-wasip1)
else()
  find_program(WASI_CLANG clang-19 REQUIRED)
  find_program(WASI_CLANGXX clang++-19 REQUIRED)
  find_program(WASI_AR NAMES llvm-ar-19 llvm-ar REQUIRED)
  find_program(WASI_RANLIB NAMES llvm-ranlib-19 llvm-ranlib REQUIRED)
  set(CMAKE_C_COMPILER "${WASI_CLANG}")
  set(CMAKE_CXX_COMPILER "${WASI_CLANGXX}")
  set(CMAKE_AR "${WASI_AR}" CACHE FILEPATH "archiver")
  set(CMAKE_RANLIB "${WASI_RANLIB}" CACHE FILEPATH "ranlib")
  # Debian puts the wasi-libc headers/libraries under /usr/{include,lib}/wasm32-wasi.
  set(CMAKE_SYSROOT "/usr")
  # clang-19 looks for wasm-ld next to itself; Debian names it wasm-ld-19.
  find_program(WASI_LD NAMES wasm-ld-19 wasm-ld REQUIRED)
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=${WASI_LD}")
endif()

set(CMAKE_C_COMPILER_TARGET ${WASI_TARGET})
set(CMAKE_CXX_COMPILER_TARGET ${WASI_TARGET})
set(CMAKE_EXECUTABLE_SUFFIX ".wasm")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
