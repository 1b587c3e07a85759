# SPDX-License-Identifier: Apache-2.0
# ctests of `preference`: a small run prints every loss; hostile sizes fail with exit status 2 and
# one line on stderr (they used to wrap the element count and crash, or abort on std::bad_alloc).
# Included by examples/CMakeLists.txt.
add_test(NAME example_preference COMMAND preference --pairs 4 --tokens 32 --vocab 1000 WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(example_preference PROPERTIES LABELS "example" PASS_REGULAR_EXPRESSION "backward fp32 : ")
llm_example_error_test(example_preference_pairs_wrap preference
    ARGS --pairs 2305843009213693952 --tokens 8 --vocab 1
    MESSAGE "preference: --pairs '2305843009213693952' is not an integer in [1, 16777216]")
llm_example_error_test(example_preference_vocab_huge preference
    ARGS --vocab 99999999999
    MESSAGE "preference: --vocab '99999999999' is not an integer in [2, 16777216]")
# Each size in range, the product far too large (2^73: it wraps a 64-bit count).
llm_example_error_test(example_preference_product_overflow preference
    ARGS --pairs 16777216 --tokens 16777216 --vocab 16777216
    MESSAGE "preference: 2 * --pairs * --tokens * --vocab = 2 * 16777216 * 16777216 * 16777216 logits is more than the limit of 134217728")
llm_example_error_test(example_preference_product_too_large preference
    ARGS --pairs 1000 --tokens 1000 --vocab 1000
    MESSAGE "preference: 2 * --pairs * --tokens * --vocab = 2 * 1000 * 1000 * 1000 logits is more than the limit of 134217728")
llm_example_error_test(example_preference_threads_negative preference
    ARGS --threads -2
    MESSAGE "preference: --threads '-2' is not an integer in [1, 1024]")
llm_example_error_test(example_preference_missing_value preference
    ARGS --pairs 4 --tokens
    MESSAGE "preference: --tokens needs a value")
