# SPDX-License-Identifier: Apache-2.0
# ctest: `tokenize` reproduces every golden file of ../shared/data/tokenizers/golden (cmp-equal)
# and `--decode` gives the corpus back. Included by examples/CMakeLists.txt.
set(tok_data "${LLM_SHARED_DATA_DIR}/tokenizers")
set(tok_runs
    "r50k_base.tiktoken|none|r50k_base.ordinary.ids" "r50k_base.tiktoken|all|r50k_base.allspecial.ids"
    "cl100k_base.tiktoken|none|cl100k_base.ordinary.ids" "cl100k_base.tiktoken|all|cl100k_base.allspecial.ids"
    "o200k_base.tiktoken|none|o200k_base.ordinary.ids" "o200k_base.tiktoken|all|o200k_base.allspecial.ids"
    "llama3.tiktoken|none|llama3.ordinary.ids" "llama3.tiktoken|all|llama3.allspecial.ids"
    "llama2_sp_bpe.tokenizer.json|none|llama2_sp_bpe.ordinary.ids" "mistral_sp_bpe.tokenizer.json|none|mistral_sp_bpe.ordinary.ids")
foreach(run IN LISTS tok_runs)
    string(REPLACE "|" ";" parts "${run}")
    list(GET parts 0 vocab)
    list(GET parts 1 special)
    list(GET parts 2 golden)
    add_test(NAME example_tokenize_${golden}
             COMMAND ${CMAKE_COMMAND} -DTOOL=$<TARGET_FILE:tokenize> -DINPUT=${tok_data}/corpus_public.txt
                     -DEXPECTED=${tok_data}/golden/${golden} -DOUTPUT=${CMAKE_CURRENT_BINARY_DIR}/tokenize_${golden}
                     "-DARGS=--vocab;${tok_data}/${vocab};--special;${special};--threads;2"
                     -P ${dir}/check_golden.cmake)
    set_tests_properties(example_tokenize_${golden} PROPERTIES LABELS "example;tokenizer")
endforeach()
foreach(golden IN ITEMS o200k_base.allspecial.ids mistral_sp_bpe.ordinary.ids)
    string(REGEX REPLACE "\\..*" "" stem "${golden}")
    set(vocab "${stem}.tiktoken")
    if(golden MATCHES "sp_bpe")
        set(vocab "${stem}.tokenizer.json")
    endif()
    add_test(NAME example_tokenize_decode_${stem}
             COMMAND ${CMAKE_COMMAND} -DTOOL=$<TARGET_FILE:tokenize> -DINPUT=${tok_data}/golden/${golden}
                     -DEXPECTED=${tok_data}/corpus_public.txt -DOUTPUT=${CMAKE_CURRENT_BINARY_DIR}/decode_${stem}
                     "-DARGS=--vocab;${tok_data}/${vocab};--decode" -P ${dir}/check_golden.cmake)
    set_tests_properties(example_tokenize_decode_${stem} PROPERTIES LABELS "example;tokenizer")
endforeach()
# Bad input: exit status 2 and one line on stderr naming the problem, never a crash.
llm_example_error_test(example_tokenize_missing_vocab tokenize
    ARGS --vocab ${tok_data}/no_such_file.tiktoken
    MESSAGE "tokenize: load_tokenizer: cannot open '${tok_data}/no_such_file.tiktoken': No such file or directory")
llm_example_error_test(example_tokenize_threads_text tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken --threads 2x
    MESSAGE "tokenize: --threads '2x' is not an integer in [1, 1024]")
llm_example_error_test(example_tokenize_threads_zero tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken --threads 0
    MESSAGE "tokenize: --threads '0' is not an integer in [1, 1024]")
llm_example_error_test(example_tokenize_missing_value tokenize
    ARGS --vocab
    MESSAGE "tokenize: --vocab needs a value")
llm_example_error_test(example_tokenize_unknown_flag tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken --vocab-size 5
    MESSAGE "tokenize: unknown option '--vocab-size' (see --help)")
llm_example_error_test(example_tokenize_bad_ids tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken --decode INPUT ${tok_data}/corpus_public.txt
    MESSAGE "tokenize: --decode: stdin line 1: expected ids separated by single spaces")
# A document (or with --decode a line) is bounded (64 MiB): stdin without separators fails at once
# instead of being read until memory runs out.
llm_example_error_test(example_tokenize_document_too_long tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken INPUT /dev/zero
    MESSAGE "tokenize: stdin document 1 is longer than the limit of 67108864 bytes (64 MiB)")
llm_example_error_test(example_tokenize_decode_line_too_long tokenize
    ARGS --vocab ${tok_data}/r50k_base.tiktoken --decode INPUT /dev/zero
    MESSAGE "tokenize: stdin line 1 is longer than the limit of 67108864 bytes (64 MiB)")
set_tests_properties(example_tokenize_document_too_long example_tokenize_decode_line_too_long PROPERTIES TIMEOUT 30)
