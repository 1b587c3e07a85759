# SPDX-License-Identifier: Apache-2.0
# Offline stand-in for ConanCenter's xsimd/8.1.0: packages nothing, points at Debian's libxsimd-dev + xtl-dev.
from conan import ConanFile


class SystemXsimd(ConanFile):
    name = "xsimd"
    version = "8.1.0"
    package_type = "header-library"

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "xsimd")
        self.cpp_info.set_property("cmake_target_name", "xsimd")
        self.cpp_info.includedirs = ["/usr/include"]
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
