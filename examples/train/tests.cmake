# SPDX-License-Identifier: Apache-2.0
# ctests of the `train` tool (included by examples/CMakeLists.txt): the PyTorch golden
# (check_golden.py, standard-library python; skipped without python), the TRL DPO golden
# (check_trl.py, likewise), bit-for-bit resume (resume_test.cmake), the reward model
# (reward_test.cmake) and bad arguments.
find_program(LLM_TRAIN_PYTHON NAMES python3 python NO_CACHE)
if(LLM_TRAIN_PYTHON)
    add_test(NAME example_train_golden
             COMMAND "${LLM_TRAIN_PYTHON}" "${CMAKE_CURRENT_LIST_DIR}/check_golden.py" $<TARGET_FILE:train> "${PROJECT_SOURCE_DIR}"
                     "${CMAKE_CURRENT_BINARY_DIR}/train_golden_work")
    set_tests_properties(example_train_golden PROPERTIES LABELS "example;train")
else()
    add_test(NAME example_train_golden COMMAND ${CMAKE_COMMAND} -E echo "no python: skipped")
    set_tests_properties(example_train_golden PROPERTIES LABELS "example;train" SKIP_REGULAR_EXPRESSION "skipped")
endif()
# `--objective dpo` against TRL's DPOTrainer (tests/golden/train/trl_dpo.txt), step by step.
if(LLM_TRAIN_PYTHON)
    add_test(NAME example_train_trl_dpo
             COMMAND "${LLM_TRAIN_PYTHON}" "${CMAKE_CURRENT_LIST_DIR}/check_trl.py" $<TARGET_FILE:train> "${PROJECT_SOURCE_DIR}"
                     "${CMAKE_CURRENT_BINARY_DIR}/train_trl_work")
    set_tests_properties(example_train_trl_dpo PROPERTIES LABELS "example;train")
endif()
add_test(NAME example_train_resume
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:train>" "-DSRC=${PROJECT_SOURCE_DIR}"
                 "-DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_resume_work" -P "${CMAKE_CURRENT_LIST_DIR}/resume_test.cmake")
set_tests_properties(example_train_resume PROPERTIES LABELS "example;train")

llm_example_error_test(example_train_no_data train ARGS --init x --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: --data tokens.bin is required" ABSENT o)
llm_example_error_test(example_train_two_sources train ARGS --init x --config y.json --data d.bin --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: give exactly one of --init HF_DIR, --config config.json, --resume DIR" ABSENT o)
llm_example_error_test(example_train_bad_schedule train ARGS --schedule exp
    MESSAGE "train: --schedule 'exp' is not one of constant, cosine, linear, wsd")
llm_example_error_test(example_train_missing_data train
    ARGS --config ${PROJECT_SOURCE_DIR}/tests/golden/model/gpt2/config.json --data missing.bin --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: token_file" ABSENT o)

# Fine-tuning objectives on the tiny Llama: SFT (response-masked) and DPO against the initial
# weights as the frozen reference; the log carries TRL's reward statistics.
add_test(NAME example_train_sft
         COMMAND train --init "${PROJECT_SOURCE_DIR}/tests/golden/model/llama" --objective sft --pairs "${CMAKE_CURRENT_LIST_DIR}/sft.jsonl"
                 --batch 2 --seq 8 --steps 3 --lr 1e-2 --out "${CMAKE_CURRENT_BINARY_DIR}/train_sft_work"
                 --log "${CMAKE_CURRENT_BINARY_DIR}/train_sft_work.jsonl")
set_tests_properties(example_train_sft PROPERTIES LABELS "example;train" PASS_REGULAR_EXPRESSION "step 3/3 \\| loss [0-9]")
add_test(NAME example_train_dpo
         COMMAND train --init "${PROJECT_SOURCE_DIR}/tests/golden/model/llama" --objective dpo --pairs "${CMAKE_CURRENT_LIST_DIR}/pairs.jsonl"
                 --batch 2 --seq 8 --steps 3 --lr 1e-2 --out "${CMAKE_CURRENT_BINARY_DIR}/train_dpo_work"
                 --log "${CMAKE_CURRENT_BINARY_DIR}/train_dpo_work.jsonl")
set_tests_properties(example_train_dpo PROPERTIES LABELS "example;train" PASS_REGULAR_EXPRESSION "step 3/3 \\| loss 0\\.")
# The Bradley-Terry reward model: loss falls, reward statistics logged, score.weight saved,
# resume bit for bit (reward_test.cmake).
add_test(NAME example_train_reward
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:train>" "-DSRC=${PROJECT_SOURCE_DIR}"
                 "-DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_reward_work" -P "${CMAKE_CURRENT_LIST_DIR}/reward_test.cmake")
set_tests_properties(example_train_reward PROPERTIES LABELS "example;train")
llm_example_error_test(example_train_reward_no_pairs train ARGS --objective reward --init x --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: --objective reward needs --pairs FILE.jsonl" ABSENT o)
llm_example_error_test(example_train_dpo_no_pairs train ARGS --objective dpo --init x --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: --objective dpo needs --pairs FILE.jsonl" ABSENT o)
add_test(NAME example_train_kto
         COMMAND train --init "${PROJECT_SOURCE_DIR}/tests/golden/model/llama" --objective kto --pairs "${CMAKE_CURRENT_LIST_DIR}/pairs.jsonl"
                 --batch 2 --seq 8 --steps 3 --lr 1e-2 --out "${CMAKE_CURRENT_BINARY_DIR}/train_kto_work"
                 --log "${CMAKE_CURRENT_BINARY_DIR}/train_kto_work.jsonl")
set_tests_properties(example_train_kto PROPERTIES LABELS "example;train" PASS_REGULAR_EXPRESSION "step 3/3 \\| loss 0\\.")
# Without gnuplot on PATH the run still succeeds (exit 0) and says the PNG was skipped.
add_test(NAME example_train_no_gnuplot
         COMMAND train --init "${PROJECT_SOURCE_DIR}/tests/golden/model/gpt2" --data "${PROJECT_SOURCE_DIR}/tests/golden/train_tool/tokens.bin"
                 --batch 2 --seq 8 --steps 2 --lr 1e-3 --out "${CMAKE_CURRENT_BINARY_DIR}/train_nognuplot_work"
                 --log "${CMAKE_CURRENT_BINARY_DIR}/train_nognuplot_work.jsonl")
set_tests_properties(example_train_no_gnuplot PROPERTIES LABELS "example;train" ENVIRONMENT "PATH=/nonexistent"
                     PASS_REGULAR_EXPRESSION "loss curve: skipped, gnuplot is not installed")
# Text in the --pairs JSONL, tokenized by the model directory's tokenizer.json: the same losses as
# the token ids of Hugging Face's tokenizer (text_test.cmake); without a tokenizer.json, an error
# naming the file, line, field and the missing tokenizer.json.
add_test(NAME example_train_text
         COMMAND ${CMAKE_COMMAND} "-DTOOL=$<TARGET_FILE:train>" "-DSRC=${PROJECT_SOURCE_DIR}"
                 "-DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_text_work" -P "${CMAKE_CURRENT_LIST_DIR}/text_test.cmake")
set_tests_properties(example_train_text PROPERTIES LABELS "example;train")
llm_example_error_test(example_train_text_no_tokenizer train
    ARGS --init ${PROJECT_SOURCE_DIR}/tests/golden/model/llama --objective sft --pairs ${CMAKE_CURRENT_LIST_DIR}/sft_text.jsonl
         --batch 2 --seq 8 --steps 1 --lr 0.1 --out o
    MESSAGE "sft_text.jsonl line 1: \"prompt\" is text, but the model directory has no tokenizer.json" ABSENT o)
# --dtype bf16: bf16 weights, fp32 master weights in AdamW; the loss falls and stays within 2e-2
# relative of the fp32 run; the checkpoint holds BF16 weights and F32 masters (check_bf16.py).
if(LLM_TRAIN_PYTHON)
    add_test(NAME example_train_bf16
             COMMAND "${LLM_TRAIN_PYTHON}" "${CMAKE_CURRENT_LIST_DIR}/check_bf16.py" $<TARGET_FILE:train> "${PROJECT_SOURCE_DIR}"
                     "${CMAKE_CURRENT_BINARY_DIR}/train_bf16_work")
    set_tests_properties(example_train_bf16 PROPERTIES LABELS "example;train")
endif()
llm_example_error_test(example_train_bf16_reward train ARGS --objective reward --pairs p.jsonl --dtype bf16 --init x --batch 2 --seq 4 --steps 1 --lr 0.1 --out o
    MESSAGE "train: --dtype bf16 is not supported with --objective reward yet" ABSENT o)
