# SPDX-License-Identifier: Apache-2.0
# Offline stand-in for ConanCenter's eigen/3.4.0: packages nothing, points at Debian's libeigen3-dev.
from conan import ConanFile


class SystemEigen(ConanFile):
    name = "eigen"
    version = "3.4.0"
    package_type = "header-library"

    def package_id(self):
        self.info.clear()

    def package_info(self):
        # Same names as ConanCenter's recipe, so llm's `eigen::eigen3` requirement resolves.
        self.cpp_info.set_property("cmake_file_name", "Eigen3")
        self.cpp_info.set_property("cmake_target_name", "Eigen3::Eigen")
        eigen3 = self.cpp_info.components["eigen3"]
        eigen3.set_property("cmake_target_name", "Eigen3::Eigen")
        eigen3.includedirs = ["/usr/include/eigen3"]
        eigen3.bindirs = []
        eigen3.libdirs = []
