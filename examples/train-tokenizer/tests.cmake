# SPDX-License-Identifier: Apache-2.0
# ctest: train-tokenizer trains a small vocabulary on the shared corpus and prints its metrics.
add_test(NAME example_train-tokenizer
         COMMAND train-tokenizer --corpus ${LLM_SHARED_DATA_DIR}/tokenizers/corpus_public.txt
                 --out ${CMAKE_CURRENT_BINARY_DIR}/trained_example --vocab-size 2000 --special <|endoftext|>)
set_tests_properties(example_train-tokenizer PROPERTIES LABELS "example;tokenizer"
                     PASS_REGULAR_EXPRESSION "bytes/token, fertility")
