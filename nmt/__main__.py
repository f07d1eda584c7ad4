"""`python -m nmt <command> [args]` and the `nmt` console script: run one of the
entry points exactly as `python -m nmt.<command> [args]` runs it."""

from __future__ import annotations

import runpy
import sys

from nmt.utils.errors import quiet_broken_pipe

COMMANDS = {
    "train": "train a translation model or a char LM (Hydra overrides)",
    "evaluate": "translate a split and score it with sacreBLEU (Hydra overrides)",
    "translate": "translate stdin or a file, one output line per input line",
    "generate": "continue prompts with a char LM",
    "repl": "translate or generate interactively",
    "serve": "serve a checkpoint over HTTP: JSON API and a web page",
    "export": "write a checkpoint's inference part (no optimizer), e.g. in bf16",
    "average": "average the weights of checkpoints of one run",
    "sweep_report": "rebuild the summary of a Hydra multirun dir",
    "plot": "draw the validation curves of training runs into a PNG",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help}" for name, help in COMMANDS.items()]
    return "usage: nmt <command> [args]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    quiet_broken_pipe()
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    command = args[0].replace("-", "_")
    if command not in COMMANDS:
        print(f"nmt: error: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"nmt {command}", *args[1:]]
    runpy.run_module(f"nmt.{command}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
