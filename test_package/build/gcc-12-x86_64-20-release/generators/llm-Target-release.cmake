# Avoid multiple calls to find_package to append duplicated properties to the targets
include_guard()########### VARIABLES #######################################################################
#############################################################################################
set(llm_FRAMEWORKS_FOUND_RELEASE "") # Will be filled later
conan_find_apple_frameworks(llm_FRAMEWORKS_FOUND_RELEASE "${llm_FRAMEWORKS_RELEASE}" "${llm_FRAMEWORK_DIRS_RELEASE}")

set(llm_LIBRARIES_TARGETS "") # Will be filled later


######## Create an interface target to contain all the dependencies (frameworks, system and conan deps)
if(NOT TARGET llm_DEPS_TARGET)
    add_library(llm_DEPS_TARGET INTERFACE IMPORTED)
endif()

set_property(TARGET llm_DEPS_TARGET
             APPEND PROPERTY INTERFACE_LINK_LIBRARIES
             $<$<CONFIG:Release>:${llm_FRAMEWORKS_FOUND_RELEASE}>
             $<$<CONFIG:Release>:${llm_SYSTEM_LIBS_RELEASE}>
             $<$<CONFIG:Release>:>)

####### Find the libraries declared in cpp_info.libs, create an IMPORTED target for each one and link the
####### llm_DEPS_TARGET to all of them
conan_package_library_targets("${llm_LIBS_RELEASE}"    # libraries
                              "${llm_LIB_DIRS_RELEASE}" # package_libdir
                              "${llm_BIN_DIRS_RELEASE}" # package_bindir
                              "${llm_LIBRARY_TYPE_RELEASE}"
                              "${llm_IS_HOST_WINDOWS_RELEASE}"
                              llm_DEPS_TARGET
                              llm_LIBRARIES_TARGETS  # out_libraries_targets
                              "_RELEASE"
                              "llm"    # package_name
                              "${llm_NO_SONAME_MODE_RELEASE}")  # soname

# FIXME: What is the result of this for multi-config? All configs adding themselves to path?
set(CMAKE_MODULE_PATH ${llm_BUILD_DIRS_RELEASE} ${CMAKE_MODULE_PATH})

########## GLOBAL TARGET PROPERTIES Release ########################################
    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_LINK_LIBRARIES
                 $<$<CONFIG:Release>:${llm_OBJECTS_RELEASE}>
                 $<$<CONFIG:Release>:${llm_LIBRARIES_TARGETS}>
                 )

    if("${llm_LIBS_RELEASE}" STREQUAL "")
        # If the package is not declaring any "cpp_info.libs" the package deps, system libs,
        # frameworks etc are not linked to the imported targets and we need to do it to the
        # global target
        set_property(TARGET llm::llm
                     APPEND PROPERTY INTERFACE_LINK_LIBRARIES
                     llm_DEPS_TARGET)
    endif()

    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_LINK_OPTIONS
                 $<$<CONFIG:Release>:${llm_LINKER_FLAGS_RELEASE}>)
    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES
                 $<$<CONFIG:Release>:${llm_INCLUDE_DIRS_RELEASE}>)
    # Necessary to find LINK shared libraries in Linux
    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_LINK_DIRECTORIES
                 $<$<CONFIG:Release>:${llm_LIB_DIRS_RELEASE}>)
    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS
                 $<$<CONFIG:Release>:${llm_COMPILE_DEFINITIONS_RELEASE}>)
    set_property(TARGET llm::llm
                 APPEND PROPERTY INTERFACE_COMPILE_OPTIONS
                 $<$<CONFIG:Release>:${llm_COMPILE_OPTIONS_RELEASE}>)

########## For the modules (FindXXX)
set(llm_LIBRARIES_RELEASE llm::llm)
