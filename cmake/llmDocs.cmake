# SPDX-License-Identifier: Apache-2.0
# Documentation: the guides' snippets are tests, and Doxygen builds the API reference.
#
# Every ```cpp block in docs/*.md that defines main() is extracted at configure time into
# <build>/docs/snippets/<guide>_<k>.cpp, compiled with the project's warnings and run by ctest
# (label "docs"), so the guides cannot rot. The sanitizer build leaves them out: they call what the
# unit tests call, and compiling ~25 more programs with ASan costs CI minutes it does not have.
file(GLOB llm_guides CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/*.md")
if(LLM_SANITIZE)
    set(llm_guides "")
endif()
foreach(guide IN LISTS llm_guides)
    get_filename_component(stem "${guide}" NAME_WE)
    file(READ "${guide}" text)  # a string, not a list: semicolons in C++ stay intact
    set(k 0)
    while(TRUE)
        string(FIND "${text}" "```cpp\n" open)
        if(open EQUAL -1)
            break()
        endif()
        math(EXPR start "${open} + 7")
        string(SUBSTRING "${text}" ${start} -1 text)
        string(FIND "${text}" "```" close)
        if(close EQUAL -1)
            message(FATAL_ERROR "${guide}: unterminated ```cpp block")
        endif()
        string(SUBSTRING "${text}" 0 ${close} code)
        math(EXPR after "${close} + 3")
        string(SUBSTRING "${text}" ${after} -1 text)
        if(NOT code MATCHES "int main\\(")
            continue()
        endif()
        math(EXPR k "${k} + 1")
        set(snippet "${PROJECT_BINARY_DIR}/docs/snippets/${stem}_${k}.cpp")
        file(CONFIGURE OUTPUT "${snippet}" CONTENT "// Extracted from docs/${stem}.md; edit the guide, not this file.\n${code}" @ONLY)
        add_executable(doc_${stem}_${k} "${snippet}")
        target_link_libraries(doc_${stem}_${k} PRIVATE llm_dev_flags)
        add_test(NAME doc_${stem}_${k} COMMAND doc_${stem}_${k} WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
        set_tests_properties(doc_${stem}_${k} PROPERTIES LABELS "docs")
    endwhile()
endforeach()

# `cmake --build <dir> --target docs`: Doxygen API reference in <build>/docs/html. Undocumented
# public API (outside detail namespaces) is a warning, and warnings fail the target; ctest runs
# it (label "docs") when Doxygen is installed.
find_package(Doxygen QUIET)
if(DOXYGEN_FOUND)
    configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${PROJECT_BINARY_DIR}/docs/Doxyfile" @ONLY)
    add_custom_target(docs COMMAND Doxygen::doxygen "${PROJECT_BINARY_DIR}/docs/Doxyfile"
                      WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" COMMENT "Doxygen API reference")
    if(LLM_BUILD_TESTS AND NOT LLM_SANITIZE)
        add_test(NAME doxygen COMMAND Doxygen::doxygen "${PROJECT_BINARY_DIR}/docs/Doxyfile"
                 WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
        set_tests_properties(doxygen PROPERTIES LABELS "docs")
    endif()
endif()
