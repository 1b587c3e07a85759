// SPDX-License-Identifier: Apache-2.0
// The per-step metrics line (JSONL) and the progress line.
#include <llm/io/json.hpp>
#include <llm/train/metrics.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <cmath>
#include <fstream>
#include <string>

TEST_CASE("metrics_json: the fields a run logs, exact numbers, null for NaN, skipped batches with their reason") {
    llm::train::step_metrics m{.step = 12, .loss = 3.2861, .lr = 6e-4, .grad_norm = 1.0 / 3.0, .tokens_per_s = 5231.5};
    m.extra = {{"val_loss", 3.5}};
    const std::string line = llm::train::metrics_json(m);
    CHECK(line == "{\"step\": 12, \"loss\": 3.2861, \"lr\": 6e-04, \"grad_norm\": 0.3333333333333333, \"tokens_per_s\": 5231.5, "
                  "\"val_loss\": 3.5}");
    const auto doc = llm::io::parse_json(line, "line");
    CHECK(doc.at("grad_norm", "t").as_number("t") == 1.0 / 3.0);
    llm::train::step_metrics s{.step = 13, .loss = NAN, .lr = 6e-4, .skipped = true, .reason = "loss is NaN"};
    const auto d2 = llm::io::parse_json(llm::train::metrics_json(s), "line");
    CHECK(d2.at("loss", "t").is_null());
    CHECK(d2.at("skipped", "t").as_bool("t"));
    CHECK(d2.at("reason", "t").as_string("t") == "loss is NaN");

    llm_test::temp_dir dir;
    {
        llm::train::metrics_log log(dir / "m.jsonl");
        log.write(m);
    }
    {
        llm::train::metrics_log log(dir / "m.jsonl", true);  // a resumed run appends
        log.write(s);
    }
    std::ifstream in(dir / "m.jsonl");
    std::string a, b, c;
    REQUIRE(std::getline(in, a));
    REQUIRE(std::getline(in, b));
    CHECK(!std::getline(in, c));
    CHECK(a == line);
    CHECK(b.find("\"step\": 13") != std::string::npos);
    CHECK_THROWS_WITH_AS(llm::train::metrics_log(dir / "no/such/dir.jsonl"), doctest::Contains("cannot open"), llm::error);
}

TEST_CASE("progress_line: step/N, loss, lr, tokens/s and the ETA from the mean step time") {
    CHECK(llm::train::progress_line(120, 5000, 3.28614, 6e-4, 5231.5, 60.0) ==
          "step 120/5000 | loss 3.2861 | lr 6.00e-04 | 5232 tok/s | ETA 40m40s");
    CHECK(llm::train::progress_line(1, 10000, 10.9, 6e-4, 100, 1.0).find("ETA 2h46m") != std::string::npos);
    CHECK(llm::train::progress_line(0, 10, 0, 0, 0, 0).find("ETA --") != std::string::npos);
}
