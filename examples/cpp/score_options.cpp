// Scores "Yes" and "No" as answers to a clinical question with a local model.
//
//   score_options MODEL.gguf "Would you give ibuprofen for a sprained ankle?"

#include <cstdio>
#include <exception>

#include "medfair/error.hpp"
#include "medfair/eval/option_scorer.hpp"
#include "medfair/models/causal_lm.hpp"
#include "medfair/prompts/task.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL QUESTION\n", argv[0]);
    return 2;
  }
  try {
    medfair::CausalLM model = medfair::CausalLM::load(argv[1]);

    medfair::prompts::StagePrompt stage;
    stage.stage = "decision";
    stage.conversation = {{"user", std::string(argv[2]) + " Answer Yes or No."}};
    stage.answer_prefix = "Answer:";
    stage.options = {medfair::prompts::make_option("Yes"), medfair::prompts::make_option("No")};

    medfair::eval::OptionScorer scorer(model);
    medfair::eval::StageScores scores = scorer.score_set({&stage}).front();
    for (size_t i = 0; i < scores.options.size(); ++i) {
      std::printf("%s\t%.4f\n", scores.options[i].c_str(), scores.probabilities[i]);
    }
    std::printf("coverage\t%.4f\n", scores.coverage);
    return 0;
  } catch (const medfair::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "unexpected error: %s\n", error.what());
    return 1;
  }
}
