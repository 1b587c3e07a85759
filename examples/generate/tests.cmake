# SPDX-License-Identifier: Apache-2.0
# ctests of the generate tool on the tiny golden checkpoints: --ids output equals transformers'
# greedy tokens (tests/golden/generate/), speculative decoding too, and bad arguments.
# Included by examples/CMakeLists.txt.
add_test(NAME example_generate_llama
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/model/llama" "-DDRAFT="
                 "-DPROMPT=3,17,9,40" "-DEXPECT=26 31 2 31 26 18 56 56 56 56 56 56 56 56 56 40"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
add_test(NAME example_generate_llama_draft
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/model/llama" "-DDRAFT=tests/golden/model/qwen2"
                 "-DPROMPT=3,17,9,40" "-DEXPECT=26 31 2 31 26 18 56 56 56 56 56 56 56 56 56 40"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
add_test(NAME example_generate_gpt2
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/model/gpt2" "-DDRAFT="
                 "-DPROMPT=5,6,7,8,9,10,11,12,13,2,33" "-DEXPECT=59 26 54 21 26 21 11 39 4 1 37 26 26 11 47 4"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
# Mixtral and Mamba (transformers' tiny checkpoints of the moe and ssm tests): the goldens of
# tests/golden/generate/{mixtral,mamba}.txt; a Mamba draft is refused by name (no KV cache to roll back).
add_test(NAME example_generate_mixtral
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/moe/mixtral" "-DDRAFT="
                 "-DPROMPT=3,17,9,40" "-DEXPECT=61 59 17 37 16 37 40 61 31 44 58 2 52 54 61 61"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
add_test(NAME example_generate_mamba
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/ssm/mamba_lm" "-DDRAFT="
                 "-DPROMPT=5,6,7,8,9,10,11,12,13,2,33" "-DEXPECT=8 15 49 6 0 1 35 31 36 10 10 32 54 30 26 60"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(example_generate_llama example_generate_llama_draft example_generate_gpt2 example_generate_mixtral
                     example_generate_mamba PROPERTIES LABELS "example;generate")

llm_example_error_test(example_generate_no_model generate ARGS --prompt-ids 1
    MESSAGE "generate: --model PATH is required")
llm_example_error_test(example_generate_missing generate ARGS --model does-not-exist --prompt-ids 1 --ids
    MESSAGE "generate: ")
llm_example_error_test(example_generate_mamba_draft generate
    ARGS --model ${PROJECT_SOURCE_DIR}/tests/golden/model/llama --draft ${PROJECT_SOURCE_DIR}/tests/golden/ssm/mamba_lm --prompt-ids 1 --ids
    MESSAGE "is a recurrent model (Mamba): speculative decoding needs a KV cache to roll back")
llm_example_error_test(example_generate_bad_ids generate ARGS --model x --prompt-ids 1,a --ids
    MESSAGE "generate: --prompt-ids: 'a' is not a token id")
add_test(NAME example_generate_gguf
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:generate>" "-DMODEL=tests/golden/generate/qwen2.gguf" "-DDRAFT="
                 "-DPROMPT=3,17,9,40" "-DEXPECT=54 33 54 54 37 37 60 46 37 11 37 45 45 19 37 35"
                 -P "${CMAKE_CURRENT_LIST_DIR}/check_ids.cmake"
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(example_generate_gguf PROPERTIES LABELS "example;generate")
llm_example_error_test(example_generate_bad_gguf generate ARGS --model bad.gguf --prompt-ids 1 --ids
    SETUP "printf 'GGUF' > bad.gguf" MESSAGE "generate: ")
