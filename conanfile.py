# SPDX-License-Identifier: Apache-2.0
# Conan 2 recipe for llm, a header-only C++20 library: one package id for every option set.
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout


class LlmConan(ConanFile):
    name = "llm"
    version = "0.1.0"
    description = "Header-only C++20 template library of LLM building blocks"
    license = "Apache-2.0"
    topics = ("llm", "header-only", "simd", "tokenizer", "gemm")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    # Optional backends; each adds its dependency and defines LLM_HAS_<X>=1 for consumers.
    options = {
        "with_eigen": [True, False],
        "with_xsimd": [True, False],
        "with_highway": [True, False],
        "with_cuda": [True, False],
    }
    default_options = {"with_eigen": False, "with_xsimd": False, "with_highway": False, "with_cuda": False}
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # Versions as ConanCenter names them; offline CI provides them through wrapper recipes
        # over Debian's packages (ports/conan/system/).
        if self.options.with_eigen:
            self.requires("eigen/3.4.0")
        if self.options.with_xsimd:
            self.requires("xsimd/8.1.0")
        if self.options.with_highway:
            self.requires("highway/1.0.3")

    def package_id(self):
        # Header-only: the files are the same for every setting and option.
        self.info.clear()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))
        copy(self, "*.cuh", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))
        copy(self, "*.inc", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "llm")
        self.cpp_info.set_property("cmake_target_name", "llm::llm")
        self.cpp_info.set_property("pkg_config_name", "llm")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
        backends = {
            "with_eigen": ("EIGEN", "eigen::eigen3"),
            "with_xsimd": ("XSIMD", "xsimd::xsimd"),
            "with_highway": ("HWY", "highway::hwy"),
            "with_cuda": ("CUDA", None),
        }
        for option, (macro, requirement) in backends.items():
            if self.options.get_safe(option):
                self.cpp_info.defines.append(f"LLM_HAS_{macro}=1")
                if requirement:
                    self.cpp_info.requires.append(requirement)
