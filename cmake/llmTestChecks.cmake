# SPDX-License-Identifier: Apache-2.0
# Checks over the whole tree that ctest and the build run: every public header compiles on
# its own and with -fno-exceptions, the CUDA-facing headers compile with nvcc, and a
# downstream project consumes the package (installed, and through add_subdirectory).

# ---- every header alone ----------------------------------------------------------------
file(GLOB_RECURSE llm_public_headers CONFIGURE_DEPENDS RELATIVE "${PROJECT_SOURCE_DIR}/include"
     "${PROJECT_SOURCE_DIR}/include/llm/*.hpp")
set(llm_header_sources "")
foreach(header IN LISTS llm_public_headers)
    string(MAKE_C_IDENTIFIER "${header}" stem)
    set(source "${CMAKE_CURRENT_BINARY_DIR}/header_check/${stem}.cpp")
    file(CONFIGURE OUTPUT "${source}" CONTENT "#include <${header}>\n#include <${header}>  // include guard\n")
    list(APPEND llm_header_sources "${source}")
endforeach()
if(NOT LLM_SANITIZE)  # the sanitizer build re-checks nothing the release build did not
    add_library(llm_header_check OBJECT ${llm_header_sources})
    target_link_libraries(llm_header_check PRIVATE llm_dev_flags)
endif()

# ---- -fno-exceptions: every header compiles, and bad input prints its message and aborts ----
# One executable: a generated TU including every public header plus tests/noexcept/abort.cpp,
# whose bad input (a tensor of 2^40 x 2^40 floats) must end in abort() with llm::error's text.
if(NOT LLM_SANITIZE AND NOT MSVC)
    set(llm_noexcept_includes "// Generated: every public header, compiled with -fno-exceptions.\n")
    foreach(header IN LISTS llm_public_headers)
        string(APPEND llm_noexcept_includes "#include <${header}>\n")
    endforeach()
    file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/noexcept_headers.cpp" CONTENT "${llm_noexcept_includes}")
    add_executable(llm_noexcept_abort "${CMAKE_CURRENT_BINARY_DIR}/noexcept_headers.cpp"
                                      "${PROJECT_SOURCE_DIR}/tests/noexcept/abort.cpp")
    target_link_libraries(llm_noexcept_abort PRIVATE llm_dev_flags)
    target_compile_options(llm_noexcept_abort PRIVATE -fno-exceptions)
    add_test(NAME noexcept_abort
             COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:llm_noexcept_abort>
                     "-DEXPECT=llm::error: tensor: the element count .* overflows std::size_t"
                     -P "${PROJECT_SOURCE_DIR}/tests/noexcept/expect_abort.cmake")
    set_tests_properties(noexcept_abort PROPERTIES LABELS "noexcept")
endif()

# ---- nvcc compile check: every .cuh and every header with LLM_HD code, for sm_80 and sm_90 --
if(LLM_HAS_CUDA)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
        set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    file(GLOB_RECURSE llm_cuda_candidates CONFIGURE_DEPENDS RELATIVE "${PROJECT_SOURCE_DIR}/include"
         "${PROJECT_SOURCE_DIR}/include/llm/*.hpp" "${PROJECT_SOURCE_DIR}/include/llm/*.cuh")
    set(llm_cuda_includes "// Generated: every header meant for nvcc.\n")
    foreach(header IN LISTS llm_cuda_candidates)
        file(READ "${PROJECT_SOURCE_DIR}/include/${header}" text)
        if(header MATCHES "\\.cuh$" OR text MATCHES "LLM_HD")
            string(APPEND llm_cuda_includes "#include <${header}>\n")
        endif()
    endforeach()
    string(APPEND llm_cuda_includes "int main() { return 0; }\n")
    file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/nvcc_check.cu" CONTENT "${llm_cuda_includes}")
    add_executable(llm_nvcc_check "${CMAKE_CURRENT_BINARY_DIR}/nvcc_check.cu")
    target_link_libraries(llm_nvcc_check PRIVATE llm_dev_flags)
    # CMake 3.25 cannot ask nvcc for C++20 through CUDA_STANDARD; pass the flag directly.
    if(NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
        target_compile_options(llm_nvcc_check PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
    endif()
    target_compile_options(llm_nvcc_check PRIVATE
        $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -diag-suppress=20012>)
    set_target_properties(llm_nvcc_check PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
    message(STATUS "llm: nvcc compile check for sm ${CMAKE_CUDA_ARCHITECTURES}")

    # GPU tests collected by tests/CMakeLists.txt ("module|sources").
    foreach(entry IN LISTS llm_gpu_tests)
        string(REPLACE "|" ";" parts "${entry}")
        list(POP_FRONT parts module)
        add_executable(test_${module}_gpu ${parts})
        target_link_libraries(test_${module}_gpu PRIVATE llm_test_main)
        target_compile_options(test_${module}_gpu PRIVATE
            $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -diag-suppress=20012>)
        if(NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
            target_compile_options(test_${module}_gpu PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
        endif()
        set_target_properties(test_${module}_gpu PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
        add_test(NAME ${module}_gpu COMMAND test_${module}_gpu WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
        # Without a device the program exits 77: ctest reports it skipped, not passed.
        set_tests_properties(${module}_gpu PROPERTIES LABELS "gpu;${module}" SKIP_RETURN_CODE 77)
    endforeach()
endif()

# ---- downstream consumer ---------------------------------------------------------------
if(LLM_INSTALL AND NOT LLM_SANITIZE)
    foreach(mode install subdirectory fetchcontent)
        add_test(NAME consumer_${mode}
                 COMMAND ${CMAKE_COMMAND}
                         -DMODE=${mode}
                         -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                         -DBUILD_DIR=${PROJECT_BINARY_DIR}
                         -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/consumer_${mode}
                         -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
                         -DGENERATOR=${CMAKE_GENERATOR}
                         -DEXPECT_MPI=${LLM_HAS_MPI}
                         -P ${PROJECT_SOURCE_DIR}/cmake/llmConsumerCheck.cmake)
        set_tests_properties(consumer_${mode} PROPERTIES LABELS "consumer" RUN_SERIAL TRUE)
    endforeach()
endif()

# ---- the vcpkg overlay port, run with stand-ins for vcpkg's helpers (vcpkg is not reachable) --
if(LLM_INSTALL AND NOT LLM_SANITIZE)
    foreach(variant IN ITEMS "all:eigen,xsimd,highway" "minimal:")
        string(REPLACE ":" ";" parts "${variant}")
        list(GET parts 0 tag)
        string(REGEX REPLACE "^[a-z]+:" "" features "${variant}")
        add_test(NAME vcpkg_port_${tag}
                 COMMAND ${CMAKE_COMMAND}
                         -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                         -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/vcpkg_port_${tag}
                         -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
                         -DGENERATOR=${CMAKE_GENERATOR}
                         "-DFEATURES=${features}"
                         -P ${PROJECT_SOURCE_DIR}/cmake/llmVcpkgPortCheck.cmake)
        set_tests_properties(vcpkg_port_${tag} PROPERTIES LABELS "consumer;packaging" RUN_SERIAL TRUE)
    endforeach()
endif()

# ---- Conan 2: `conan create` offline with Debian's packages behind wrapper recipes ----------
if(LLM_INSTALL AND NOT LLM_SANITIZE)
    find_program(LLM_PYTHON3 python3)
    if(LLM_PYTHON3)
        add_test(NAME conan_create
                 COMMAND "${PROJECT_SOURCE_DIR}/cmake/conan-check.sh" "${CMAKE_CURRENT_BINARY_DIR}/conan")
        set_tests_properties(conan_create PROPERTIES LABELS "consumer;packaging" RUN_SERIAL TRUE)
    endif()
endif()
