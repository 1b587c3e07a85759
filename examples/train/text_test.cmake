# SPDX-License-Identifier: Apache-2.0
# ctest: text fields in --pairs JSONL. A model directory holding the tiny Llama and the tiny
# byte-level BPE tokenizer.json (tests/golden/generate/tiny-tokenizer) trains `--objective sft`
# and `--objective dpo` once on text JSONL (sft_text.jsonl, pairs_text.jsonl) and once on the
# token ids Hugging Face `tokenizers` gives for the same fields, each field encoded on its own
# (sft_text_ids.jsonl, pairs_text_ids.jsonl, written by transformers 4.44.2's tokenizers). The
# same ids give the same computation, so every step's loss and grad_norm must be equal as
# printed (no tolerance); one differing id (a joint prompt + response tokenization, a missed
# merge, an added BOS) changes the losses in their leading digits.
# cmake -DTOOL=... -DSRC=... -DWORK=... -P text_test.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/model")
foreach(f config.json model.safetensors)
    file(COPY "${SRC}/tests/golden/model/llama/${f}" DESTINATION "${WORK}/model")
endforeach()
file(COPY "${SRC}/tests/golden/generate/tiny-tokenizer/tokenizer.json" DESTINATION "${WORK}/model")

function(run_tool)
    execute_process(COMMAND "${TOOL}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "train ${ARGN} failed (${rc}): ${out} ${err}")
    endif()
endfunction()

# fields: loss and grad_norm of every log line, as one list
function(log_values log outvar)
    file(STRINGS "${log}" lines)
    set(vals "")
    foreach(line IN LISTS lines)
        string(JSON loss GET "${line}" loss)
        string(JSON gn GET "${line}" grad_norm)
        list(APPEND vals "${loss}" "${gn}")
    endforeach()
    set(${outvar} "${vals}" PARENT_SCOPE)
endfunction()

foreach(case "sft;sft_text" "dpo;pairs_text")
    list(GET case 0 objective)
    list(GET case 1 file)
    foreach(kind text ids)
        if(kind STREQUAL "text")
            set(pairs "${SRC}/examples/train/${file}.jsonl")
        else()
            set(pairs "${SRC}/examples/train/${file}_ids.jsonl")
        endif()
        run_tool(--init "${WORK}/model" --objective ${objective} --pairs "${pairs}" --batch 2 --seq 16 --steps 3 --lr 1e-2
                 --threads 1 --out "${WORK}/${objective}_${kind}" --log "${WORK}/${objective}_${kind}.jsonl" --plot "${WORK}/${objective}_${kind}.png")
        log_values("${WORK}/${objective}_${kind}.jsonl" v_${kind})
    endforeach()
    list(LENGTH v_text n)
    if(NOT n EQUAL 6)
        message(FATAL_ERROR "${objective}: expected 3 log lines (6 values), got ${n}: ${v_text}")
    endif()
    if(NOT v_text STREQUAL v_ids)
        message(FATAL_ERROR "${objective}: text JSONL gives loss/grad_norm ${v_text}, the token-id JSONL ${v_ids}")
    endif()
    message(STATUS "${objective}: text and token ids agree: ${v_text}")
endforeach()
