# SPDX-License-Identifier: Apache-2.0
# ctests of the convert tool: the tiny Qwen2, Mistral, GPT-2, Llama 3, Mixtral and Mamba checkpoints (with the tiny tokenizer of
# tests/golden/generate/tiny-tokenizer) converted, then run by the generate tool, give
# transformers' greedy tokens (Qwen2 f32; Mistral f32 has no sliding window in GGUF: its
# tokens are the first 16 of the windowless model, checked in tests/generate/gguf.cpp; here the
# Qwen2 q8_0 file's first token); bad arguments. Included by examples/CMakeLists.txt.
foreach(type f32 q8_0)
    if(type STREQUAL "f32")
        set(expect "54 33 54 54 37 37 60 46 37 11 37 45 45 19 37 35")
    else()
        set(expect "")
    endif()
    add_test(NAME example_convert_qwen2_${type}
             COMMAND ${CMAKE_COMMAND} "-DCONVERT=$<TARGET_FILE:convert>" "-DGENERATE=$<TARGET_FILE:generate>"
                     "-DMODEL=tests/golden/model/qwen2" "-DTYPE=${type}" "-DOUT=${CMAKE_CURRENT_BINARY_DIR}/convert_qwen2_${type}.gguf"
                     "-DPROMPT=3,17,9,40" "-DEXPECT=${expect}" "-DFIRST=54"
                     -P "${CMAKE_CURRENT_LIST_DIR}/check_convert.cmake"
             WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
    set_tests_properties(example_convert_qwen2_${type} PROPERTIES LABELS "example;generate")
endforeach()
llm_example_error_test(example_convert_no_args convert ARGS tests/golden/model/qwen2
    MESSAGE "convert: expected HF_DIR OUT.gguf")
llm_example_error_test(example_convert_bad_type convert ARGS tests/golden/model/qwen2 out.gguf --type q9_9
    MESSAGE "convert: --type: unknown type 'q9_9'" ABSENT out.gguf)
# GPT-2, Llama 3 (rope_freqs.weight), Mixtral and Mamba in f32: transformers' greedy tokens of the prompt
# 3,17,9,40 (tests/golden/generate/<family>.txt) through our file and the generate tool
foreach(case "gpt2|tests/golden/model/gpt2|26 40 40 40 40 59 21 21 21 21 40 26 59 40 59 59"
             "llama|tests/golden/model/llama|26 31 2 31 26 18 56 56 56 56 56 56 56 56 56 40"
             "mixtral|tests/golden/moe/mixtral|61 59 17 37 16 37 40 61 31 44 58 2 52 54 61 61"
             "mamba|tests/golden/ssm/mamba_lm|27 53 53 10 49 8 26 26 60 32 49 15 6 49 14 38")
    string(REPLACE "|" ";" parts "${case}")
    list(GET parts 0 name)
    list(GET parts 1 dir)
    list(GET parts 2 expect)
    string(REGEX MATCH "^[0-9]+" first "${expect}")
    add_test(NAME example_convert_${name}_f32
             COMMAND ${CMAKE_COMMAND} "-DCONVERT=$<TARGET_FILE:convert>" "-DGENERATE=$<TARGET_FILE:generate>"
                     "-DMODEL=${dir}" "-DTYPE=f32" "-DOUT=${CMAKE_CURRENT_BINARY_DIR}/convert_${name}_f32.gguf"
                     "-DPROMPT=3,17,9,40" "-DEXPECT=${expect}" "-DFIRST=${first}"
                     -P "${CMAKE_CURRENT_LIST_DIR}/check_convert.cmake"
             WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
    set_tests_properties(example_convert_${name}_f32 PROPERTIES LABELS "example;generate")
endforeach()
# llama.cpp runs our output (examples/convert/peers_llamacpp.sh): only with -DLLM_LLAMA_CPP_BIN=
# <a llama.cpp build>/bin (llama-simple), label "peers"; CI has no llama.cpp.
set(LLM_LLAMA_CPP_BIN "" CACHE PATH "llama.cpp's bin directory (llama-simple) for the peers ctest of convert")
if(LLM_LLAMA_CPP_BIN)
    add_test(NAME peers_convert_llamacpp
             COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/peers_llamacpp.sh" "$<TARGET_FILE:convert>" "$<TARGET_FILE:generate>" "${LLM_LLAMA_CPP_BIN}"
             WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
    set_tests_properties(peers_convert_llamacpp PROPERTIES LABELS "peers")
endif()
