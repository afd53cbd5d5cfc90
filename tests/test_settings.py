"""Settings: the reference's names (mapped, or accepted with a notice), proxies and the init timeout."""

from __future__ import annotations

import pytest

import tracker_jupyter as tj


def test_the_reference_s_setting_names_are_taken(capsys, monkeypatch) -> None:
    from tracker_jupyter import settings as settings_module

    monkeypatch.setattr(settings_module, "_noticed", set())
    settings = tj.Settings(
        start_method="thread", quiet=True, finish_timeout=7, x_disable_stats=True, mode="offline"
    )
    assert settings.silent is True and settings.sync_timeout == 7.0 and settings.mode == "offline"
    assert settings.system_metrics is False  # the reference's switch says the opposite of ours
    again = tj.Settings.coerce({"start_method": "fork", "_disable_meta": True, "init_timeout": 2})
    assert again.init_timeout == 2.0
    err = capsys.readouterr().err
    assert err.count("'start_method' has no effect here") == 1  # one notice per name
    assert "'_disable_meta' has no effect" in err and "x_disable_stats" not in err
    assert tj.Settings(_stats_sampling_interval=2, console="wrap").system_metrics_interval == 2.0
    with pytest.raises(tj.UsageError, match="Did you mean 'silent'"):
        tj.Settings(silnet=True)  # a misspelling of ours is still an error with the suggestion


def test_proxies_and_the_init_timeout_reach_the_http_client(monkeypatch) -> None:
    from tracker_jupyter.online import credentials

    monkeypatch.setenv("TRACKER_HTTPS_PROXY", "http://proxy.example:3128")
    settings = tj.Settings(init_timeout=1.5)
    assert credentials.proxies(settings) == {"https": "http://proxy.example:3128"}
    assert credentials.init_timeout(settings) == 1.5
    from tracker_jupyter.online.rest.client import MlflowRest

    with MlflowRest("https://mlflow.example", proxies=credentials.proxies(settings)) as client:
        assert client._session.proxies["https"] == "http://proxy.example:3128"
