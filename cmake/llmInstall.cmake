# SPDX-License-Identifier: Apache-2.0
# Install rules: headers, the exported llm::llm target, llmConfig.cmake, llmConfigVersion.cmake, llm.pc.
# share/llm: found by find_package and already where vcpkg_cmake_config_fixup() wants it.
set(LLM_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/llm" CACHE STRING
    "Where the CMake package files are installed (relative to the prefix)")

install(DIRECTORY include/llm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh" PATTERN "*.inc")
install(TARGETS llm EXPORT llmTargets)
install(EXPORT llmTargets NAMESPACE llm:: DESTINATION ${LLM_INSTALL_CMAKEDIR})
# The opt-in communicators of llm::dist, each in an export set of its own: llmConfig.cmake loads
# it only where its dependency (MPI; CUDA for NCCL) is found again, so a consumer of llm::llm
# alone needs neither.
if(TARGET llm_mpi)
    set_target_properties(llm_mpi PROPERTIES EXPORT_NAME mpi)
    install(TARGETS llm_mpi EXPORT llmMpiTargets)
    install(EXPORT llmMpiTargets NAMESPACE llm:: DESTINATION ${LLM_INSTALL_CMAKEDIR})
    set(LLM_PACKAGE_MPI ON)
else()
    set(LLM_PACKAGE_MPI OFF)
endif()
if(TARGET llm_nccl)
    set_target_properties(llm_nccl PROPERTIES EXPORT_NAME nccl)
    install(TARGETS llm_nccl EXPORT llmNcclTargets)
    install(EXPORT llmNcclTargets NAMESPACE llm:: DESTINATION ${LLM_INSTALL_CMAKEDIR})
    set(LLM_PACKAGE_NCCL ON)
else()
    set(LLM_PACKAGE_NCCL OFF)
endif()

configure_package_config_file(cmake/llmConfig.cmake.in
    "${PROJECT_BINARY_DIR}/llmConfig.cmake"
    INSTALL_DESTINATION ${LLM_INSTALL_CMAKEDIR})
# Header-only: the package fits any architecture. While the version is 0.y, minor versions
# may break the API, so only the same minor version is compatible.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/llmConfigVersion.cmake"
    COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/llmConfig.cmake" "${PROJECT_BINARY_DIR}/llmConfigVersion.cmake"
        DESTINATION ${LLM_INSTALL_CMAKEDIR})

# pkg-config: include path, C++20 and the backend macros chosen at configure time.
set(LLM_PC_CFLAGS "-std=c++20")
foreach(backend IN LISTS LLM_ENABLED_BACKENDS)
    if(NOT backend STREQUAL "CUDA")
        string(APPEND LLM_PC_CFLAGS " -DLLM_HAS_${backend}=1")
    endif()
endforeach()
set(LLM_PC_REQUIRES "")
if("EIGEN" IN_LIST LLM_ENABLED_BACKENDS)
    list(APPEND LLM_PC_REQUIRES "eigen3")
endif()
if("HWY" IN_LIST LLM_ENABLED_BACKENDS)
    list(APPEND LLM_PC_REQUIRES "libhwy")
endif()
list(JOIN LLM_PC_REQUIRES ", " LLM_PC_REQUIRES)
configure_file(cmake/llm.pc.in "${PROJECT_BINARY_DIR}/llm.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/llm.pc" DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
