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


def test_grpo_uses_the_measured_turn_cap_only_where_it_was_measured():
    import dataclasses

    assert GRPOTrainingConfig().turn_cap() == 12
    assert GRPOTrainingConfig(env_kwargs={"size": 4, "observation": "compact"}).turn_cap() == 12
    assert GRPOTrainingConfig(env_kwargs={"size": 5}).turn_cap() is None
    assert GRPOTrainingConfig(env="interplay/CodeBreaker-v0").turn_cap() is None
    assert GRPOTrainingConfig(max_turns=30).turn_cap() == 30
    assert dataclasses.replace(GRPOTrainingConfig(), env="interplay/CodeBreaker-v0").turn_cap() is None
