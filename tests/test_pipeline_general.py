"""configs/pipeline-general-cpu.yaml end to end: tiny random models built locally, a reasoning
chain and the non-reasoning chain into one mix with rows of every kind; judge outcomes in the
verify stats; the composition on the mix card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from datagen.cli.main import main
from datagen.store import Store
from datagen.tinymodel import save_tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("prefect_harness")
def test_general_cpu_pipeline_mixes_every_kind(tmp_path, monkeypatch):
    save_tiny(tmp_path / "models" / "tiny")
    save_tiny(tmp_path / "models" / "tiny-digits", charset="0123456789")
    config = yaml.safe_load((REPO / "configs" / "pipeline-general-cpu.yaml").read_text())
    config["root"] = str(tmp_path / "datasets")
    (tmp_path / "datagen" / "data").mkdir(parents=True)
    shutil.copytree(REPO / "datagen" / "data" / "general", tmp_path / "datagen" / "data" / "general")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)  # the config's paths (models/, datagen/data/) are relative, as in the README
    assert main(["run", "pipeline", "--config", str(cfg)]) == 0

    store = Store(config["root"])
    verify = store.resolve("general-verified@latest").stats
    outcomes = verify["outcomes"]
    assert sum(outcomes["judge"].values()) > 0 and set(outcomes["judge"]) <= {"error", "correct", "incorrect",
                                                                               "unparseable"}
    assert sum(outcomes["chrf"].values()) == 19 and sum(outcomes["self_cognition"].values()) == 13
    assert set(verify["acceptance"]["by_task"]) == {"writing", "factual_qa", "translation", "self_cognition"}

    mix = store.resolve("sft-mix-general@latest")
    rows = store.scan(mix).collect()
    kinds = set(rows["kind"].to_list())
    assert kinds == {"reasoning", "non_reasoning"}
    tasks = set(rows.filter(rows["kind"] == "non_reasoning")["task"].to_list())
    assert tasks == {"writing", "factual_qa", "self_cognition", "translation", "chat"}
    composition = mix.stats["mix"]["composition"]
    assert composition["non_reasoning"]["self_cognition"] == {"en": 7, "zh": 6}
    assert composition["reasoning"]["-"]["en"] >= 1
    card = (Path(config["root"]) / "sft-mix-general" / mix.id / "README.md").read_text()
    assert "composition" in card and "self_cognition" in card
    # The multi-turn import keeps its earlier turns; the system turn comes first.
    chats = rows.filter(rows["task"] == "chat")["messages"].to_list()
    assert any(len(m) == 4 and m[0]["role"] == "user" for m in chats)
    assert any(m[0]["role"] == "system" for m in chats)
