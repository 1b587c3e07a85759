# SPDX-License-Identifier: Apache-2.0
# vcpkg overlay port for llm (header-only). It builds from this source tree; a registry port
# would fetch a release with vcpkg_from_github() instead and keep the rest unchanged.
set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is enough
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        eigen   LLM_WITH_EIGEN
        xsimd   LLM_WITH_XSIMD
        highway LLM_WITH_HWY
        cuda    LLM_WITH_CUDA)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DLLM_WITH_OPENMP=OFF
        -DLLM_WITH_MPI=OFF   # llm::mpi / llm::nccl would need vcpkg's mpi / CUDA ports declared
        -DLLM_WITH_NCCL=OFF
        -DLLM_BUILD_TESTS=OFF
        -DLLM_BUILD_BENCHMARKS=OFF
        -DLLM_BUILD_EXAMPLES=OFF)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/llm)
vcpkg_fixup_pkgconfig()

# Header-only: nothing may remain outside include/ and share/.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
