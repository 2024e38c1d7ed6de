"""`openvirl points ...`: datasets, the exact solver, and terminal play."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="GeneralPoints: datasets, solver and terminal play.")

_RULE_HELP = "Face-card rule: 'id' (J/Q/K = 10) or 'ood' (J/Q/K = 11/12/13, a face card per hand)."
_SUITS_HELP = "Suit pool of every card: mixed, black or red."
_DATASET_SUITS_HELP = (
    "Suit pool of every card: mixed, black or red; default black with --visual (GP-VL trains "
    "on black suits, red is its visual OOD), mixed otherwise (GP-L)."
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command("dataset")
def dataset_command(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    rule: str = typer.Option("id", help=_RULE_HELP),
    suits: str | None = typer.Option(None, help=_DATASET_SUITS_HELP),
    n: int = typer.Option(234, "--n", help="Held-out evaluation hands (test split)."),
    n_train: int = typer.Option(1000, "--n-train", help="SFT pairs (train split)."),
    seed: int = typer.Option(42, help="Dataset seed; hand i depends only on (seed, split, i)."),
    target: int = typer.Option(24, help="Target value."),
    visual: bool = typer.Option(False, help="GP-VL: write card images and the vision prompt."),
    deal: str = typer.Option("replacement", help="'replacement' (reference) or 'deck' (52 cards)."),
    allow_unsolvable: bool = typer.Option(False, help="Include unsolvable hands."),
    n_cards: int = typer.Option(4, "--n-cards", help="Cards per hand, 1-4 (fewer is easier)."),
    ranks: tuple[int, int] = typer.Option(
        (1, 13), help="Rank range dealt, LO HI (keep 13 for the face-card rule)."
    ),
    split_by: str = typer.Option(
        "values",
        "--split-by",
        help="Held-out unit: 'values' (unseen arithmetic) or 'ranks' (unseen prompts).",
    ),
) -> None:
    """Write SFT pairs and held-out hands as a Hugging Face `datasets`-loadable folder."""
    from openvirl.envs.points.dataset import build_dataset, default_suits

    try:
        manifest = build_dataset(
            out,
            n_test=n,
            n_train=n_train,
            seed=seed,
            rule=rule,
            suits=suits if suits is not None else default_suits(visual),
            target=target,
            visual=visual,
            deal=deal,
            allow_unsolvable=allow_unsolvable,
            n_cards=n_cards,
            ranks=tuple(ranks),
            split_by=split_by,
        )
    except ValueError as err:
        _fail(str(err))
    counts = manifest["counts"]
    typer.echo(
        f"wrote {counts['train']} train pairs and {counts['test']} test hands to {out} "
        f"(load with {manifest['load_with'].replace('DIR', repr(str(out)))})"
    )


@app.command("solve")
def solve_command(
    numbers: list[int] = typer.Argument(..., help="Card values, e.g. 3 3 8 8."),
    target: int = typer.Option(24, help="Target value."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    every_form: bool = typer.Option(
        False, "--all", help="List every written form (reorderings, bracket variants) too."
    ),
) -> None:
    """List the exact solutions for a set of numbers, distinct up to commutativity and
    associativity (1*2*3*4 and 4*3*(2*1) are one solution)."""
    from openvirl.envs.points.solver import distinct_solutions, solve

    if not numbers or any(n < 1 or n > 13 for n in numbers):
        _fail("numbers must be between 1 and 13")
    try:
        written = solve(numbers, target)
    except ValueError as err:  # e.g. more numbers than the solver takes
        _fail(str(err))
        return
    distinct = distinct_solutions(written)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "numbers": numbers,
                    "target": target,
                    "solutions": distinct,
                    "n_solutions": len(distinct),
                    "written_forms": written,
                    "n_written_forms": len(written),
                }
            )
        )
        return
    if not written:
        typer.echo(f"no solution reaches {target} with {numbers}")
        return
    typer.echo(
        f"{len(distinct)} distinct solutions for {numbers} -> {target} (up to commutativity "
        f"and associativity; {len(written)} written forms with reorderings and brackets):"
    )
    for solution in written if every_form else distinct:
        typer.echo(f"  {solution}")


@app.command("play")
def play_command(
    rule: str = typer.Option("id", help=_RULE_HELP),
    suits: str = typer.Option("mixed", help=_SUITS_HELP),
    target: int = typer.Option(24, help="Target value."),
    attempts: int = typer.Option(5, help="Verified attempts per hand."),
    seed: int | None = typer.Option(None, help="Seed of the first hand (random if omitted)."),
    image: Path | None = typer.Option(None, help="Also save each hand's card image to this PNG."),
    hands: int = typer.Option(1, help="Number of hands to play."),
) -> None:
    """Play in the terminal: type a formula (e.g. 8/(3-8/3)), read the verifier's feedback."""
    from rich.console import Console

    from openvirl.envs.points.env import GeneralPointsEnv

    console = Console()
    try:
        env = GeneralPointsEnv(rule=rule, suits=suits, target=target, max_attempts=attempts)
    except ValueError as err:
        _fail(str(err))
    solved = 0
    for hand in range(hands):
        _, info = env.reset(seed=None if seed is None else seed + hand)
        console.rule(f"hand {hand + 1}")
        cards = "  ".join(info["cards"])
        console.print(f"Cards: [bold]{cards}[/bold]   (numbers {info['numbers']})")
        console.print(f"Reach [bold]{target}[/bold], each card once, with + - * / ( ).")
        console.print("An empty line gives up.")
        hint = info["solutions"][0] if info["solutions"] else "no solution"
        if image is not None:
            env.image.save(image)
            console.print(f"card image saved to {image}")
        attempt = 0
        while True:
            attempt += 1
            try:
                formula = input(f"attempt {attempt}/{attempts}> ").strip()
            except EOFError:
                formula = ""
            if not formula:
                console.print(f"A solution: [green]{hint}[/green]")
                break
            payload = {"cards": info["cards"], "number": info["numbers"], "formula": formula}
            answer = json.dumps(payload)
            _, reward, terminated, _, step_info = env.step(answer)
            colour = "green" if step_info["outcome"] == "correct" else "yellow"
            outcome = step_info["outcome"]
            console.print(f"[{colour}]{outcome}[/{colour}] ({reward:+g}): {step_info['feedback']}")
            if terminated:
                won = step_info.get("episode_outcome") == "correct"
                solved += won
                if not won:
                    console.print(f"A solution: [green]{hint}[/green]")
                break
    console.print(f"solved {solved}/{hands}")
