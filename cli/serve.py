"""``prefpaint serve``: the HTTP API and the mask-painting page, on one model in memory."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from ._common import console, handle_errors, say, setup, warn
from ._options import COUNT, MODEL_NAME, offline_option

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    model: Optional[list[str]] = typer.Option(None, callback=MODEL_NAME, help="Hub id, alias (prefpaint, base) or local diffusers folder, optionally as NAME=SOURCE. Repeat it to serve several models side by side (a request's 'model' picks one by NAME, default its id; each has its own queue). Default: kd5678/prefpaint-v1.0."),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", callback=MODEL_NAME, help="Reward model (hub id or folder) that scores every candidate and answers /v1/score."),
    # the reward stack (issue 22): one stack scores every served model's candidates and answers /v1/score
    reward: Optional[list[str]] = typer.Option(None, "--reward", metavar="SPEC", help="Score with a reward stack instead: repeat NAME or NAME=SOURCE (prefpaint[=RM], clip=FOLDER, remote=http://HOST:PORT, seam, outside-change, brightness); --reward-model RM joins it as prefpaint=RM. It picks among every model's candidates and /v1/score answers each reward."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="One weight per reward of the stack, e.g. 1,0.5 (default 1 each)."),
    reward_norm: str = typer.Option("gdpo", "--reward-norm", help="How several rewards rank candidates: gdpo, sum or rank."),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Anything but loopback exposes the server to the network: set --api-key."),
    port: int = typer.Option(7860, help="TCP port (1-65535)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="PREFPAINT_API_KEY", show_envvar=True, show_default=False, help="Key every /v1 request must send (Authorization: Bearer KEY). Default: $PREFPAINT_API_KEY, else none."),
    max_queue: int = typer.Option(16, "--max-queue", help="Jobs waiting or running at once; one more gets 429 with Retry-After."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest request body in MiB (413 past it)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", callback=COUNT, help="Refuse uploaded images with more pixels than this (413), from their headers. Default: 16777216 (4096x4096)."),
    steps: Optional[int] = typer.Option(None, callback=COUNT, help="Denoising steps of requests that do not say. Default: 50."),
    select: str = typer.Option("reward", help="Default pick among candidates: 'reward' or trust-aware 'lcb' (score - c*bound)."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    offline: Optional[bool] = offline_option(),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Also write every inpainting (image, candidates, sidecar) here. Nothing is written anywhere else."),
    cors: Optional[list[str]] = typer.Option(None, "--cors", help="Allow browser calls from this origin, e.g. http://localhost:3000 (repeatable). CORS is off by default: a request from any other site's page gets 403."),
    public_url: Optional[str] = typer.Option(None, "--public-url", help="Base of the URLs in response_format=url answers, e.g. https://paint.example.com behind a proxy (its host is then accepted too). Default: the bound address, http://HOST:PORT (on 0.0.0.0 or ::, the address a request arrived on); never the request's Host header."),
    allowed_hosts: Optional[list[str]] = typer.Option(None, "--allowed-host", help="Also answer requests whose Host is this name (repeatable; '*': any). Default: on loopback only localhost, 127.x.x.x and [::1]; bound elsewhere, also IP addresses and this machine's name. Other names get 421 (DNS rebinding guard)."),
    upload_timeout: float = typer.Option(60.0, "--upload-timeout", help="Seconds an upload may stall (no bytes) before it is dropped with 408 and its connection closed; one slower than 16 KiB/s past this is dropped too."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No info messages or access log."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Serve the model over HTTP: OpenAI-compatible /v1/images/edits, /v1/inpaint, /v1/score, and a page at /."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_apps.serve.checks import validate

        checked = validate(model=model, host=host, port=port, max_queue=max_queue, max_upload_mb=max_upload_mb,
                           select=select, api_key=api_key, upload_timeout=upload_timeout, public_url=public_url,
                           cors=cors, allowed_hosts=allowed_hosts, output_dir=output_dir, reward_model=reward_model,
                           reward=reward, reward_weights=reward_weights, reward_norm=reward_norm, offline=offline)
        stack, sources = checked["stack"], checked["sources"]
        public_url, cors, allowed_hosts = checked["public_url"], checked["cors"], checked["allowed_hosts"]
        from prefpaint_apps.serve import DEFAULT_SERVE_MAX_PIXELS, create_app
        from prefpaint_apps.serve.app import check_models

        from prefpaint_sdk import Inpainter, InvalidInputError, RewardModel

        # Every model loads before the server listens: one that does not fit is an error now, never mid-request.
        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            # every model's and the reward model's files first (no weights read), so a bad second one is named
            # before a slow first load
            for i, (_, source) in enumerate(sources):
                Inpainter.check_files(source, offline=offline, device=device, steps=steps,
                                      reward_model=reward_model if i == 0 and not stack else None)
            if stack:
                from prefpaint_sdk.reward.specs import load_stack

                rm = load_stack(stack[0], stack[1], reward_norm, device=device, offline=offline)
            else:
                rm = RewardModel.from_pretrained(reward_model, device=device, offline=offline) if reward_model else None
            loaded = {}
            for name, source in sources:
                inp = Inpainter.from_pretrained(source, device=device, dtype=dtype, reward_model=rm, offline=offline,
                                                select=select, steps=steps)
                name = name or inp.model_id
                if name in loaded:
                    raise InvalidInputError(f"--model: two models are named '{name}'; name them NAME=SOURCE")
                loaded[name] = inp
        inpainters = check_models(loaded)
        app = create_app(inpainters, rm, api_key=api_key, max_queue=max_queue, max_upload_mb=max_upload_mb,
                         max_pixels=max_pixels or DEFAULT_SERVE_MAX_PIXELS, default_steps=steps,
                         output_dir=output_dir, cors=cors or None, public_url=public_url,
                         allowed_hosts=allowed_hosts, upload_timeout_s=upload_timeout)
        if host not in _LOOPBACK and not api_key:
            warn(f"serving on {host} without --api-key: anyone who can reach this address can use the model; "
                 "set --api-key (or PREFPAINT_API_KEY)")
        import uvicorn

        shown = f"[{host}]" if ":" in host else host
        if not quiet:
            say(f"serving {', '.join(inpainters)} on http://{shown}:{port}/ (API at /v1, Ctrl-C stops)")
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, log_config=None,
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        server.run()
