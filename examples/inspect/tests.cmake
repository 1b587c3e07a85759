# SPDX-License-Identifier: Apache-2.0
# ctest: `inspect` on the golden GGUF and safetensors files (text and JSON), a sharded checkpoint,
# two 10 GB sparse files that must open at once, and hostile arguments and files.
# Included by examples/CMakeLists.txt.
set(inspect_golden "${PROJECT_SOURCE_DIR}/tests/golden/io")
set(inspect_tool "'$<TARGET_FILE:inspect>'")
add_test(NAME example_inspect
         COMMAND sh -c "set -e; cd '${inspect_golden}'
             ${inspect_tool} all_types.gguf > /tmp/llm_inspect_$$.txt
             out=/tmp/llm_inspect_$$.txt; trap 'rm -f $out' EXIT
             grep -q '^format: GGUF v3$' $out
             grep -q 'test.u64 (u64) = 9223372036854775813' $out
             grep -q 'arr.string (array of 4 string) = \\[\"a\", \"\", ' $out
             grep -Eq '^  q8_0.rows +q8_0 +\\[2, 32\\] +68 ' $out
             grep -q '^total: 5 tensors, 111 elements, 198 bytes' $out
             ${inspect_tool} all_types.gguf --max-items 1 | grep -q 'arr.u8 (array of 3 u8) = \\[0, ... 2 more\\]'
             ${inspect_tool} all_types.gguf --json | grep -q '\"total\":{\"tensors\":5,\"elements\":111,\"bytes\":198}}'
             ${inspect_tool} torch.safetensors | grep -Eq '^  x.bf16 +BF16 +\\[2, 2\\] +8 '
             ${inspect_tool} safetensors_sharded/model.safetensors.index.json --json | grep -q '\"format\":\"safetensors (sharded)\",\"shards\":2'")
set_tests_properties(example_inspect PROPERTIES LABELS "example;io")

# 10 GB files that are all holes: inspect reads the header only, so it finishes at once.
set(inspect_work "${CMAKE_CURRENT_BINARY_DIR}/inspect_sparse")
add_test(NAME example_inspect_sparse
         COMMAND sh -c "set -e; rm -rf '${inspect_work}'; mkdir -p '${inspect_work}'; cd '${inspect_work}'
             cp '${inspect_golden}/sparse_10g.gguf.head' big.gguf
             cp '${inspect_golden}/sparse_10g.safetensors.head' big.safetensors
             read g s < '${inspect_golden}/sparse_10g.sizes'
             truncate -s $g big.gguf; truncate -s $s big.safetensors
             ${inspect_tool} big.gguf | grep -Eq 'token_embd.weight +f32 +\\[50000, 50000\\] +10000000000 '
             ${inspect_tool} big.safetensors --json | grep -q '\"bytes\":10000000000'
             rm -f big.gguf big.safetensors")
set_tests_properties(example_inspect_sparse PROPERTIES LABELS "example;io" TIMEOUT 20)

llm_example_error_test(example_inspect_missing inspect ARGS does-not-exist.gguf
    MESSAGE "inspect: cannot open 'does-not-exist.gguf'")
llm_example_error_test(example_inspect_no_file inspect ARGS --json MESSAGE "inspect: no FILE given")
llm_example_error_test(example_inspect_unknown_flag inspect ARGS x.gguf --bogus MESSAGE "inspect: unknown option '--bogus'")
llm_example_error_test(example_inspect_truncated_gguf inspect ARGS head.gguf
    SETUP "cp '${inspect_golden}/sparse_10g.gguf.head' head.gguf"
    MESSAGE "head.gguf: offset 162: the data section would start at 192, past the end of the file (162 bytes)")
llm_example_error_test(example_inspect_not_a_model inspect ARGS text.safetensors
    SETUP "printf 'hello world, not a model' > text.safetensors"
    MESSAGE "exceeds the limit of 100000000 bytes")
