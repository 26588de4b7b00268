"""``sphsal train``: train a registered model on a dataset (works under ``torchrun``).

A run folder that already holds a run's ``last.pt`` is refused: continue it with ``--resume`` (same
settings and number of processes) or replace it with ``--overwrite`` (the old ``last.pt`` and TensorBoard
event files are deleted as the new run starts, so an overwrite interrupted before its first checkpoint
leaves none to resume: run it again).
"""

from __future__ import annotations

from sphsal.cli.options import (
    add_dataset_options,
    add_model_options,
    dataset_arguments,
    device,
    non_negative_float,
    non_negative_int,
    output_dir,
    parse_key_values,
    positive_float,
    positive_int,
    probability,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model", description=__doc__)
    add_model_options(p)
    add_dataset_options(p, split="train")
    p.add_argument("--out", required=True, type=output_dir,
                   help="run folder (checkpoint last.pt, log.csv, config.json)")
    p.add_argument("--epochs", type=positive_int, default=1, help="passes over the videos (default 1)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps")
    p.add_argument("--batch-size", type=positive_int, default=2, help="clips per step (default 2)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: the model's recipe; parts the recipe trains at other "
                        "rates, e.g. STAViS's pretrained backbone, keep their ratio to it)")
    p.add_argument("--loss", default=None, help="loss spec, e.g. 'kld+0.5*cc' (default: the model's recipe)")
    p.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine", "step"),
                   help="learning-rate schedule over the run (default: constant; step: x0.1 at half and "
                        "again at three quarters of the run)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0,
                   help="linear learning-rate warm-up steps")
    p.add_argument("--clip-grad", type=non_negative_float, default=5.0,
                   help="largest gradient norm (default 5; 0: no clipping)")
    p.add_argument("--hflip", type=probability, default=0.0,
                   help="probability of mirroring each training clip left-right, its ambisonics mirrored "
                        "to match (default 0; STAViS's released training used 0.5)")
    p.add_argument("--random-yaw", action="store_true",
                   help="turn each training clip about the polar axis by a random angle (whole ERP "
                        "columns), its ambisonics turned to match; for 360-degree ERP data only")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of weights, clip order and dropout (default 0)")
    p.add_argument("--ckpt-every", type=positive_int, default=50,
                   help="steps between checkpoints (default 50)")
    p.add_argument("--log-every", type=positive_int, default=1, help="steps between log.csv rows (default 1)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="data loader worker processes")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--device", type=device, default=None, help="torch device (default: CUDA when available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run even if OUT holds a run's last.pt (deleted as the new run starts)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log to OUT/tensorboard (needs tensorboard; a resumed run's events after "
                        "its checkpoint are dropped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.engine.train import TrainConfig, train

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    config = TrainConfig(
        model=args.model, dataset=args.dataset, root=args.root, out_dir=args.out,
        model_kwargs=parse_key_values(args.model_arg, "--model-arg"),
        dataset_kwargs=dataset_arguments(args),
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
        loss=args.loss, clip_grad=args.clip_grad, hflip=args.hflip, random_yaw=args.random_yaw,
        seed=args.seed, amp=not args.no_amp,
        ckpt_every=args.ckpt_every, log_every=args.log_every, num_workers=args.workers,
        tensorboard=args.tensorboard, progress=not args.quiet, device=args.device, overwrite=args.overwrite,
    )
    summary = train(config, resume=args.resume)
    if not summary["main"]:  # torchrun's other ranks: rank 0 reports
        return 0
    print(f"trained {args.model}: step {summary['step']}, loss {summary['loss']:.4f}, "
          f"checkpoint {summary['checkpoint']}")
    if args.max_steps is not None and summary["step"] < args.max_steps:
        print(f"(the {args.epochs} epoch(s) of --epochs ended before --max-steps {args.max_steps})")
    return 0
