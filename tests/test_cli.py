import argparse

from interplay import cli
from interplay.training.config import GRPOTrainingConfig, ImitationConfig


def test_config_flags_parse_json_dicts_optional_numbers_and_exploration():
    parser = argparse.ArgumentParser()
    cli._add_config_fields(parser, ImitationConfig)
    args = parser.parse_args(["--env-kwargs", '{"expert": "explorer"}', "--max-turns", "5"])
    assert args.env_kwargs == {"expert": "explorer"} and args.max_turns == 5

    parser = argparse.ArgumentParser()
    cli._add_config_fields(parser, GRPOTrainingConfig)
    args = parser.parse_args(["--exploration", "outcome_count:0.1", "--tasks", "3"])
    assert args.exploration.methods == ["outcome_count"] and args.tasks == 3


def test_default_training_task_is_an_id_that_says_its_turn_limit():
    import gymnasium as gym

    import interplay.training.config as config_module

    # The measured 12-turn limit of GRPO on 4x4 mazes lives in the registered id, not in the training config.
    assert not hasattr(config_module, "GRPO_TURN_CAPS") and not hasattr(GRPOTrainingConfig, "turn_cap")
    assert GRPOTrainingConfig().env == ImitationConfig().env == "interplay/Maze-4x4-v0"
    assert GRPOTrainingConfig().max_turns is None and ImitationConfig().max_turns is None
    assert gym.spec("interplay/Maze-4x4-v0").kwargs == {"size": 4, "max_turns": 12}
    env = gym.make(GRPOTrainingConfig().env)
    for seed in range(5):
        observation, info = env.reset(seed=seed)
        assert env.unwrapped.max_turns == info["max_turns"] == 12 and "Reach goal in 12 moves" in observation


def test_train_help_documents_trls_fields_and_interplays(capsys):
    import pytest

    with pytest.raises(SystemExit) as done:
        cli.main(["train", "grpo", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--learning_rate LEARNING_RATE, --learning-rate LEARNING_RATE The initial learning rate for AdamW. " \
           "(default: 0.0003)" in text  # TRL's help, interplay's measured default
    assert "interplay (GRPOTrainingConfig):" in text and "--credit CREDIT which advantage each turn gets" in text
    assert "--lora-r LORA_R, --lora_r LORA_R LoRA rank" in text
