# SPDX-License-Identifier: Apache-2.0
# ctests of train-tokenizer: it trains a small vocabulary on the shared corpus and both files it
# writes load back (check_reload.cmake); bad arguments and bad targets fail with exit status 2, one
# line on stderr and neither file written. Included by examples/CMakeLists.txt.
set(tt_corpus "${LLM_SHARED_DATA_DIR}/tokenizers/corpus_public.txt")
add_test(NAME example_train-tokenizer
         COMMAND ${CMAKE_COMMAND} -DTRAIN=$<TARGET_FILE:train-tokenizer> -DTOKENIZE=$<TARGET_FILE:tokenize> -DCORPUS=${tt_corpus}
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train-tokenizer_reload -DVOCAB_SIZE=2000 -P ${dir}/check_reload.cmake)
set_tests_properties(example_train-tokenizer PROPERTIES LABELS "example;tokenizer")

llm_example_error_test(example_train-tokenizer_vocab_size_text train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab-size abc ABSENT t.tiktoken t.tokenizer.json
    MESSAGE "train-tokenizer: --vocab-size 'abc' is not an integer in [256, 16777216]")
llm_example_error_test(example_train-tokenizer_vocab_size_negative train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab-size -1 ABSENT t.tiktoken t.tokenizer.json
    MESSAGE "train-tokenizer: --vocab-size '-1' is not an integer in [256, 16777216]")
llm_example_error_test(example_train-tokenizer_missing_value train-tokenizer
    ARGS --corpus ${tt_corpus} --out
    MESSAGE "train-tokenizer: --out needs a value")
llm_example_error_test(example_train-tokenizer_unknown_flag train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab 300 ABSENT t.tiktoken t.tokenizer.json
    MESSAGE "train-tokenizer: unknown option '--vocab'")
# A duplicate special is refused before anything is written (it used to leave a tokenizer.json
# that `tokenize` rejects).
llm_example_error_test(example_train-tokenizer_duplicate_special train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab-size 300 --special <s> --special <s> ABSENT t.tiktoken t.tokenizer.json
    MESSAGE "train-tokenizer: --special '<s>' is given twice")
# One target cannot be written (a directory): the other file is not written either.
llm_example_error_test(example_train-tokenizer_one_target_bad train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab-size 300 SETUP "mkdir t.tokenizer.json" ABSENT t.tiktoken
    MESSAGE "output 't.tokenizer.json' exists and is not a regular file (a directory)")
# A symlink target is refused, not replaced (the link and what it points to stay as they were).
llm_example_error_test(example_train-tokenizer_symlink_target train-tokenizer
    ARGS --corpus ${tt_corpus} --out t --vocab-size 300 SETUP "echo keep > kept && ln -s kept t.tiktoken"
    UNCHANGED kept ABSENT t.tokenizer.json CHECK "test -L t.tiktoken"
    MESSAGE "output 't.tiktoken' exists and is not a regular file (a symbolic link)")
# The corpus is read with a stated limit through llm::io::read_file; a directory is refused.
llm_example_error_test(example_train-tokenizer_corpus_directory train-tokenizer
    ARGS --corpus . --out t ABSENT t.tiktoken t.tokenizer.json
    MESSAGE "train-tokenizer: '.' is a directory")
# A stale "PREFIX.tiktoken.tmp" (here a directory) does not stop a run: temporaries have unique names.
add_test(NAME example_train-tokenizer_stale_temp
         COMMAND sh -c "set -e; rm -rf tt_stale && mkdir -p tt_stale/t.tiktoken.tmp tt_stale/t.tokenizer.json.tmp && cd tt_stale
             '$<TARGET_FILE:train-tokenizer>' --corpus '${tt_corpus}' --out t --vocab-size 300
             test -s t.tiktoken && test -s t.tokenizer.json"
         WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
set_tests_properties(example_train-tokenizer_stale_temp PROPERTIES LABELS "example;tokenizer")
