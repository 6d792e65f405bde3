"""Secrets out of what runs write and say (mlops/core/redact.py)."""

from __future__ import annotations

import pytest

from mlops.core.redact import redact, redact_all, secret_values


@pytest.mark.parametrize("text, expected", [
    ("git clone https://mlops-bot:ghp_abc123@github.com/org/repo.git failed",
     "git clone https://***@github.com/org/repo.git failed"),
    ("remote 'https://oauth2:glpat-x_y@gitlab.example:8443/g/p.git/': 403",
     "remote 'https://***@gitlab.example:8443/g/p.git/': 403"),
    ("token only: https://ghp_abc123@github.com/o/r", "token only: https://***@github.com/o/r"),
    ("postgresql+psycopg2://airflow:pw-1234@postgres:5432/airflow", "postgresql+psycopg2://***@postgres:5432/airflow"),
    ("redis://:r3dis@redis:6379/0", "redis://***@redis:6379/0"),
    ("Authorization: Bearer eyJhbGciOi.J9.sig-_x", "Authorization: Bearer ***"),
    ("header authorization: basic dXNlcjpwYXNz=", "header authorization: basic ***"),
    ("ssh://git@host/repo and git@github.com:org/repo.git", "ssh://***@host/repo and git@github.com:org/repo.git"),
    ("https://github.com/org/repo.git and /srv/data@2026/x.csv and a@b.c",
     "https://github.com/org/repo.git and /srv/data@2026/x.csv and a@b.c"),
])
def test_url_userinfo_and_bearer_credentials_are_masked(text, expected):
    assert redact(text, env={}) == expected


def test_the_environments_secret_values_are_masked_wherever_they_appear():
    # given an environment with secrets under the names that hold them, and ordinary variables
    env = {"MLOPS_API_KEY": "k3y-value-9", "MLOPS_TRAFFIC_SALT": "pepper-salt", "AWS_SECRET_ACCESS_KEY": "wJalrXUtn/K7",
           "AWS_SESSION_TOKEN": "FwoGZXIvYXdz", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "HF_TOKEN": "hf_abcdef",
           "AIRFLOW__CORE__FERNET_KEY": "fernet=key=", "DB_PASSWORD": "hunter22", "MLOPS_WORKSPACE_MODE": "isolated",
           "MLOPS_GIT_REMOTE": "https://bot:pa%40ss-word@git.example/r.git", "PATH": "/usr/bin", "MLOPS_KEY": "x1",
           "TOKENIZERS_PARALLELISM": "false", "GITHUB_TOKEN": "true"}
    text = ("key k3y-value-9 salt pepper-salt aws wJalrXUtn/K7 FwoGZXIvYXdz id AKIAEXAMPLE hf hf_abcdef fernet=key= "
            "hunter22 mode isolated; git said: password 'pa@ss-word' rejected; path /usr/bin x1; false, true")
    # then their literal values are masked; the ordinary ones, and values too short to tell apart, are not
    assert redact(text, env) == ("key *** salt *** aws *** *** id AKIAEXAMPLE hf *** *** *** mode isolated; git "
                                 "said: password '***' rejected; path /usr/bin x1; false, true")
    assert "pa%40ss-word" in secret_values(env) and "x1" not in secret_values(env)


def test_the_real_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("MLOPS_ALERT_TOKEN", "tok-from-env-42")
    assert redact("sent with tok-from-env-42") == "sent with ***"
    assert redact(None) == "" and redact(RuntimeError("https://u:p4ss@h/x")) == "https://***@h/x"


def test_every_string_of_a_json_value_is_redacted():
    env = {"MLOPS_API_KEY": "abcd1234"}
    value = {"text": "key abcd1234", "n": 3, "nested": [{"url": "https://u:pw12@h/x"}, None, True], "t": ("abcd1234",)}
    assert redact_all(value, env) == {"text": "key ***", "n": 3, "nested": [{"url": "https://***@h/x"}, None, True],
                                      "t": ["***"]}
