# SPDX-License-Identifier: Apache-2.0
# Offline stand-in for ConanCenter's highway/1.0.3: packages nothing, points at Debian's libhwy-dev.
from conan import ConanFile


class SystemHighway(ConanFile):
    name = "highway"
    version = "1.0.3"
    package_type = "header-library"  # llm uses Highway header-only (static dispatch)

    def package_id(self):
        self.info.clear()

    def package_info(self):
        # Same names as ConanCenter's recipe: file hwy, component hwy -> hwy::hwy.
        self.cpp_info.set_property("cmake_file_name", "hwy")
        hwy = self.cpp_info.components["hwy"]
        hwy.set_property("cmake_target_name", "hwy::hwy")
        hwy.includedirs = ["/usr/include"]
        hwy.bindirs = []
        hwy.libdirs = []
