"""A quiet console: ZenML's misleading hints are dropped, its other lines are kept."""

from __future__ import annotations

import logging

import pytest

from stacks.bootstrap import QUIET_LOG_LINES, quiet_zenml_env


def test_the_login_hint_the_pro_advert_and_the_autologging_warning_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_zenml_env()
    quiet_zenml_env()  # idempotent: one filter per logger
    for name in QUIET_LOG_LINES:
        assert sum(1 for f in logging.getLogger(name).filters if type(f).__name__ == "_DropLines") == 1
    caplog.set_level(logging.INFO)
    logging.getLogger("zenml.pipelines.pipeline_definition").info(
        "You can visualize your pipeline runs in the `ZenML Dashboard`. In order to try it locally, "
        "please run `zenml login --local`."
    )
    logging.getLogger("zenml.orchestrators.step_run_utils").info(
        "Models can be viewed in the dashboard using ZenML Pro. Sign up for a free trial"
    )
    logging.getLogger("zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker").warning(
        "Failed to disable MLflow autologging for the following frameworks: ['fastai']."
    )
    logging.getLogger("zenml.pipelines.pipeline_definition").info("Using cached version of step `x`.")
    assert [r.getMessage() for r in caplog.records] == ["Using cached version of step `x`."]
