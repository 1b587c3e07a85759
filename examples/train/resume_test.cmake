# SPDX-License-Identifier: Apache-2.0
# ctest: `train --resume` continues bit for bit. One run of 8 steps (shuffled batches, grad
# accumulation 2, cosine schedule, clipping, weight decay) against 3 steps saved with --out and
# resumed to 8: model.safetensors and optimizer.safetensors must be byte-identical and the log
# lines of steps 3..7 equal except the timing fields.
# cmake -DTOOL=... -DSRC=... -DWORK=... -P resume_test.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(common --init "${SRC}/tests/golden/model/llama" --data "${SRC}/tests/golden/train_tool/tokens.bin" --batch 2 --seq 4
    --lr 1e-2 --schedule cosine --warmup 2 --min-lr 1e-3 --weight-decay 0.1 --clip 0.5 --grad-accum 2 --seed 7 --threads 2
    --plot "${WORK}/loss.png")
function(run_tool)
    execute_process(COMMAND "${TOOL}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "train ${ARGN} failed (${rc}): ${out} ${err}")
    endif()
endfunction()
run_tool(${common} --steps 8 --out "${WORK}/full" --log "${WORK}/full.jsonl")
run_tool(${common} --steps 3 --out "${WORK}/part" --log "${WORK}/part.jsonl")
list(REMOVE_ITEM common --init "${SRC}/tests/golden/model/llama")
run_tool(${common} --resume "${WORK}/part" --steps 8 --out "${WORK}/resumed" --log "${WORK}/part.jsonl")
foreach(f model.safetensors optimizer.safetensors)
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${WORK}/full/${f}" "${WORK}/resumed/${f}" RESULT_VARIABLE diff)
    if(NOT diff EQUAL 0)
        message(FATAL_ERROR "resumed run's ${f} differs from the uninterrupted run's")
    endif()
endforeach()
file(STRINGS "${WORK}/full.jsonl" a)
file(STRINGS "${WORK}/part.jsonl" b)
list(LENGTH a na)
list(LENGTH b nb)
if(NOT na EQUAL 8 OR NOT nb EQUAL 8)
    message(FATAL_ERROR "expected 8 log lines in each run, got ${na} and ${nb}")
endif()
foreach(i RANGE 7)
    list(GET a ${i} la)
    list(GET b ${i} lb)
    string(REGEX REPLACE ", \"tokens_per_s\".*" "" la "${la}")
    string(REGEX REPLACE ", \"tokens_per_s\".*" "" lb "${lb}")
    if(NOT la STREQUAL lb)
        message(FATAL_ERROR "step ${i}: '${la}' vs resumed '${lb}'")
    endif()
endforeach()
message(STATUS "resume is bit for bit: weights, optimizer state and logged losses")
