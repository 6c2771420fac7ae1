# Declarative helpers so every CMakeLists.txt reads as a list of targets.
#
#   sbx_cc_library(NAME foo SRCS a.cc HDRS a.h DEPS sbx::base [STATIC_INIT])
#   sbx_cc_test(NAME foo_test SRCS foo_test.cc DEPS sbx::foo LABELS unit)
#   sbx_cc_binary(NAME sbxd SRCS main.cc DEPS sbx::daemon)
#
# Libraries get an alias sbx::<name>. Tests are plain gtest binaries registered with CTest and
# labelled (unit, privileged, ...), so `ctest -L unit` runs the fast tier anywhere.

include_guard(GLOBAL)

# -Wnull-dereference is left out: with g++ 12 at -O2 it reports false positives inside the
# standard library as inlined into CLI11 and gRPC headers.
function(sbx_apply_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
    -Wformat=2 -Wimplicit-fallthrough -Wmisleading-indentation -Wno-missing-field-initializers)
endfunction()

# Sanitizers never reach binaries that run inside a sandbox (sbx-init, the probe payload).
function(sbx_apply_sanitizers target)
  if(SBX_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

function(sbx_cc_library)
  cmake_parse_arguments(ARG "NO_SANITIZE" "NAME" "SRCS;HDRS;DEPS;PUBLIC_DEPS" ${ARGN})
  set(target sbx_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS} ${ARG_HDRS})
  add_library(sbx::${ARG_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC_DEPS} ${ARG_DEPS})
  sbx_apply_warnings(${target})
  if(NOT ARG_NO_SANITIZE)
    sbx_apply_sanitizers(${target})
  endif()
endfunction()

function(sbx_cc_binary)
  cmake_parse_arguments(ARG "STATIC;NO_SANITIZE" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  sbx_apply_warnings(${ARG_NAME})
  if(ARG_STATIC)
    target_link_options(${ARG_NAME} PRIVATE -static)
  endif()
  if(NOT ARG_NO_SANITIZE)
    sbx_apply_sanitizers(${ARG_NAME})
  endif()
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
endfunction()

function(sbx_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT BUILD_TESTING)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  sbx_apply_warnings(${ARG_NAME})
  sbx_apply_sanitizers(${ARG_NAME})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "SBX_BIN_DIR=${PROJECT_BINARY_DIR}/bin;SBX_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# A fuzz target: under clang with SBX_FUZZ it is a libFuzzer binary; otherwise it is linked with
# a replay driver and runs every file of its corpus as a unit test.
function(sbx_cc_fuzz)
  cmake_parse_arguments(ARG "" "NAME;CORPUS" "SRCS;DEPS" ${ARGN})
  if(SBX_FUZZ)
    add_executable(${ARG_NAME} ${ARG_SRCS})
    target_compile_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  elseif(BUILD_TESTING)
    add_executable(${ARG_NAME} ${ARG_SRCS} ${PROJECT_SOURCE_DIR}/src/testing/fuzz_replay_main.cc)
    target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
    sbx_apply_warnings(${ARG_NAME})
    sbx_apply_sanitizers(${ARG_NAME})
    set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_CORPUS})
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "fuzz-replay" TIMEOUT 120)
  endif()
endfunction()
