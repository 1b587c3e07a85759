# SPDX-License-Identifier: Apache-2.0
# Trains a vocabulary with train-tokenizer, then reloads what it wrote: the tokenizer.json through
# `tokenize` (encode the corpus, decode it back byte for byte; the special gets the last id,
# VOCAB_SIZE - 1, so the vocabulary has the size asked for) and the tiktoken file line by line
# (VOCAB_SIZE - 1 ranks, "base64 rank" with ranks 0, 1, 2... in order).
# usage: cmake -DTRAIN=... -DTOKENIZE=... -DCORPUS=... -DWORK=dir -DVOCAB_SIZE=N -P check_reload.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(special "<|endoftext|>")
execute_process(COMMAND "${TRAIN}" --corpus "${CORPUS}" --out "${WORK}/trained" --vocab-size ${VOCAB_SIZE} --special "${special}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "${out}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "bytes/token, fertility")
    message(FATAL_ERROR "train-tokenizer failed (${rc})")
endif()
math(EXPR ranks "${VOCAB_SIZE} - 1")

# tokenizer.json: a round trip of the whole corpus, specials on.
execute_process(COMMAND "${TOKENIZE}" --vocab "${WORK}/trained.tokenizer.json" --special all
                INPUT_FILE "${CORPUS}" OUTPUT_FILE "${WORK}/corpus.ids" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "tokenize could not load or use trained.tokenizer.json (${rc})")
endif()
execute_process(COMMAND "${TOKENIZE}" --vocab "${WORK}/trained.tokenizer.json" --decode
                INPUT_FILE "${WORK}/corpus.ids" OUTPUT_FILE "${WORK}/corpus.decoded" RESULT_VARIABLE rc)
execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/corpus.decoded" "${CORPUS}" RESULT_VARIABLE differ)
if(NOT rc EQUAL 0 OR NOT differ EQUAL 0)
    message(FATAL_ERROR "decoding the encoded corpus with trained.tokenizer.json does not give it back")
endif()
file(WRITE "${WORK}/special.txt" "${special}")
execute_process(COMMAND "${TOKENIZE}" --vocab "${WORK}/trained.tokenizer.json" --special all
                INPUT_FILE "${WORK}/special.txt" OUTPUT_VARIABLE ids RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT ids STREQUAL "${ranks}\n")
    message(FATAL_ERROR "'${special}' encodes to '${ids}', expected ${ranks} (the id after ${ranks} ranks)")
endif()

# tiktoken: one "base64 rank" line per rank, in order. (`tokenize` loads tiktoken files only for
# the built-in encodings, whose rank counts are fixed, so the file is checked here.)
file(STRINGS "${WORK}/trained.tiktoken" lines)
list(LENGTH lines n)
if(NOT n EQUAL ranks)
    message(FATAL_ERROR "trained.tiktoken has ${n} lines, expected ${ranks}")
endif()
set(r 0)
foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[A-Za-z0-9+/]+=*( [0-9]+)$" OR NOT CMAKE_MATCH_1 STREQUAL " ${r}")
        message(FATAL_ERROR "trained.tiktoken line ${r}: '${line}'")
    endif()
    math(EXPR r "${r} + 1")
endforeach()
