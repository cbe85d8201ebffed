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
