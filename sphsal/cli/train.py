"""``sphsal train``: train a registered model on a dataset (resumable; works under ``torchrun``)."""

from __future__ import annotations

from sphsal.cli.options import add_dataset_options, add_model_options, parse_key_values


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model", description=__doc__)
    add_model_options(p)
    add_dataset_options(p)
    p.add_argument("--out", required=True, help="run folder (checkpoint last.pt, log.csv, config.json)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's recipe)")
    p.add_argument("--loss", default=None, help="loss spec, e.g. 'kld+0.5*cc' (default: the model's recipe)")
    p.add_argument("--lr-schedule", default="constant",
                   help="learning-rate schedule over the run: constant (default) or cosine")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up steps")
    p.add_argument("--clip-grad", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.engine.train import TrainConfig, train

    config = TrainConfig(
        model=args.model, dataset=args.dataset, root=args.root, out_dir=args.out,
        model_kwargs=parse_key_values(args.model_arg, "--model-arg"),
        dataset_kwargs=parse_key_values(args.dataset_arg, "--dataset-arg"),
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
        loss=args.loss, clip_grad=args.clip_grad, seed=args.seed, amp=not args.no_amp,
        ckpt_every=args.ckpt_every, num_workers=args.workers, tensorboard=args.tensorboard,
        progress=not args.quiet, device=args.device,
    )
    summary = train(config, resume=args.resume)
    print(f"trained {args.model}: step {summary['step']}, loss {summary['loss']:.4f}, "
          f"checkpoint {summary['checkpoint']}")
    return 0
