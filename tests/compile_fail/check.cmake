# SPDX-License-Identifier: Apache-2.0
# Runs one compile-fail case (tests/compile_fail/README.md states the rule):
#   cmake -DCOMPILER=<c++> -DFLAGS=<a|b|...> -DINCLUDES=<dir|dir|...> -DDEFINES=<D|D=1|...>
#         [-DIMPLICIT=<the compiler's own include dirs, left out of INCLUDES>] -DSOURCE=<file.cpp>
#         -P check.cmake
# Passes only when the compiler rejects SOURCE, its first error is reported in SOURCE itself
# (the call site, not a library body), and that error's diagnostic names the text on SOURCE's
# `// expect: <text>` line outside the lines that merely quote a declaration.
cmake_minimum_required(VERSION 3.25)  # policies of the project's CMake (CMP0054: quoted if() arguments)

foreach(var COMPILER SOURCE)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "check.cmake: -D${var}=... is required")
    endif()
endforeach()

# ---- the expected text: the first line of the file, `// expect: <text>` ------------------------
file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^// expect: (.+)$")
    message(FATAL_ERROR "${SOURCE}: the first line must be `// expect: <text>`, got '${first_line}'")
endif()
string(STRIP "${CMAKE_MATCH_1}" expect)
get_filename_component(source_name "${SOURCE}" NAME)
string(FIND "${source_name}" "${expect}" in_name)
if(NOT in_name EQUAL -1)
    message(FATAL_ERROR "${SOURCE}: the file name contains the expected text '${expect}'; rename the file")
endif()

# ---- compile -------------------------------------------------------------------------------
set(args "")
string(REPLACE "|" ";" implicit "${IMPLICIT}")
foreach(list_var FLAGS INCLUDES DEFINES)
    string(REPLACE "|" ";" items "${${list_var}}")
    foreach(item IN LISTS items)
        if(item STREQUAL "")
            continue()
        endif()
        if(list_var STREQUAL "INCLUDES")
            if(NOT item IN_LIST implicit)
                list(APPEND args "-I${item}")
            endif()
        elseif(list_var STREQUAL "DEFINES")
            list(APPEND args "-D${item}")
        else()
            list(APPEND args "${item}")
        endif()
    endforeach()
endforeach()
execute_process(COMMAND "${COMPILER}" ${args} -fsyntax-only "${SOURCE}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but it must not (expected an error naming '${expect}')")
endif()

# ---- the first error's diagnostic ----------------------------------------------------------
# Lines become list items: ';', '[' and ']' are list syntax to CMake, so they are swapped for
# placeholders first (and swapped back for messages).
string(REPLACE ";" "<semicolon>" text "${all}")
string(REPLACE "[" "<lbracket>" text "${text}")
string(REPLACE "]" "<rbracket>" text "${text}")
string(REPLACE "\n" ";" lines "${text}")
set(error_regex "(^|: )(fatal )?error: ")
set(state "before")  # before the first error, in its diagnostic, after it
set(first_error "")
set(diagnostic "")
set(named FALSE)
foreach(line IN LISTS lines)
    if(line MATCHES "${error_regex}")
        if(state STREQUAL "before")
            set(state "in")
            set(first_error "${line}")
        elseif(state STREQUAL "in")
            break()
        endif()
    endif()
    if(NOT state STREQUAL "in")
        continue()
    endif()
    string(APPEND diagnostic "${line}\n")
    # The message without its location (a path may contain the expected text: policy.hpp).
    string(REGEX REPLACE "^[^ ]*:[0-9]+(:[0-9]+)?: *" "" message_text "${line}")
    # Lines that only show where things are or quote a declaration (whose requires-clause
    # lists every constraint, satisfied or not) do not count as naming the reason.
    if(message_text MATCHES "^In file included from|^ *from |In function |In substitution of|In instantiation of|required by the constraints of|note: candidate|candidate template ignored|candidate function")
        continue()
    endif()
    string(FIND "${message_text}" "${expect}" at)
    if(NOT at EQUAL -1)
        set(named TRUE)
    endif()
endforeach()

foreach(var all first_error diagnostic)
    string(REPLACE "<semicolon>" ";" ${var} "${${var}}")
    string(REPLACE "<lbracket>" "[" ${var} "${${var}}")
    string(REPLACE "<rbracket>" "]" ${var} "${${var}}")
endforeach()

if(first_error STREQUAL "")
    message(FATAL_ERROR "${SOURCE}: the compiler failed without an 'error:' line:\n${all}")
endif()
if(NOT first_error MATCHES "^[^ ]*${source_name}:[0-9]+(:[0-9]+)?: (fatal )?error: ")
    message(FATAL_ERROR "${SOURCE}: the first error is not at the call in ${source_name} (a library body "
                        "failed instead of a constraint):\n${first_error}\n\nfull output:\n${all}")
endif()
if(NOT named)
    message(FATAL_ERROR "${SOURCE}: the first error's diagnostic does not name '${expect}':\n${diagnostic}\n"
                        "full output:\n${all}")
endif()
message(STATUS "${source_name}: rejected at the call, naming '${expect}':\n${first_error}")
