# cmake -DWASM_TOOLS=... -DCORE=... -DADAPTER=... -DOUT=... -DREQUIRED_IMPORT=... -P wasi_gpu_componentize.cmake
#
# What `wasmtime-gpu-host componentize` does, with wasm-tools: `component new` with the
# wasi_snapshot_preview1 command adapter, then a check that the component imports
# REQUIRED_IMPORT (wasi:gpu/compute at the package's version), written through OUT.tmp so a
# failure leaves no component behind. Run by wasi_gpu_add_guest (wasi_gpu_guest.cmake).
cmake_minimum_required(VERSION 3.20)
foreach(var WASM_TOOLS CORE ADAPTER OUT REQUIRED_IMPORT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "wasi_gpu_componentize.cmake: -D${var}=... is missing")
  endif()
endforeach()

set(tmp "${OUT}.tmp")
execute_process(
  COMMAND "${WASM_TOOLS}" component new "${CORE}" --adapt "wasi_snapshot_preview1=${ADAPTER}" -o "${tmp}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${tmp}")
  message(FATAL_ERROR "error: `wasm-tools component new ${CORE}` failed (${rc}); was wasi_gpu_component_type.o linked in?")
endif()
execute_process(COMMAND "${WASM_TOOLS}" component wit "${tmp}" RESULT_VARIABLE rc OUTPUT_VARIABLE wit ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE "${tmp}")
  message(FATAL_ERROR "error: `wasm-tools component wit` could not read the component: ${err}")
endif()
string(REGEX MATCHALL "import wasi:gpu/[a-z-]+@[0-9.]+" gpu_imports "${wit}")
if(NOT "import ${REQUIRED_IMPORT}" IN_LIST gpu_imports)
  file(REMOVE "${tmp}")
  if(gpu_imports)
    list(JOIN gpu_imports ", " gpu_imports)
    message(FATAL_ERROR "error: ${CORE}: the component has `${gpu_imports}`, but the host implements ${REQUIRED_IMPORT}: "
                        "the guest was built with wasi_gpu.h of another WIT version; rebuild it against this package")
  endif()
  message(FATAL_ERROR "error: ${CORE}: the component does not import ${REQUIRED_IMPORT}: is wasi_gpu.c (wasi_gpu::bindings) linked in?")
endif()
file(RENAME "${tmp}" "${OUT}")
