# The two commands of README.md: `make run` (the main job) and `make test`.
.PHONY: run test bench install lint dashboard

install:
	scripts/bootstrap.sh

run: install
	.venv/bin/python run.py

test:
	scripts/test.sh

bench: install
	.venv/bin/python benchmarks/data_qa.py
	.venv/bin/python benchmarks/quantize_check.py --workdir /tmp/visionloop-qc
	.venv/bin/python benchmarks/training_overhead.py
	.venv/bin/python benchmarks/hierarchy.py --weights abd

lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy visionloop steps pipelines materializers stacks edge_runtime ui run.py

dashboard: install
	.venv/bin/python run.py dashboard
