# SPDX-License-Identifier: Apache-2.0
# The demo checks its own figures: it prints MISMATCH and exits non-zero when one is off.
add_test(NAME example_nn_demo COMMAND nn_demo WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(example_nn_demo PROPERTIES LABELS "example" FAIL_REGULAR_EXPRESSION "MISMATCH|FAILED")
