"""Run AVS360 and the AEM x ECB prior on an ambisonic 360° video.

Run: python examples/avs360_on_a_video.py [VIDEO.mp4] [--weights last.pt]

Without a video, a synthetic one (ERP frames with moving objects, first-order ambiX audio) is made.
Without weights AVS360 is untrained (train one with `sphsal train` or `sphsal demo`); the AEM x ECB prior
needs no training and already follows the sound. Outputs: per-frame maps and overlay videos under
examples_out/.
"""

import argparse
import os

from sphsal.data import make_video
from sphsal.engine.predict import predict_videos
from sphsal.models import create_model
from sphsal.models.checkpoints import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", help="ERP video with ambisonic audio")
    parser.add_argument("--weights", help="AVS360 checkpoint (e.g. demo_out/runs/avs360/last.pt)")
    parser.add_argument("--out", default="examples_out")
    args = parser.parse_args()

    video = args.video
    if video is None:
        video = os.path.join(args.out, "synthetic.mp4")
        make_video(video, duration=3.0, fps=8, height=128, width=256, seed=7)

    prior = create_model("aem_ecb", output_size=(32, 64))
    predict_videos(prior, [video], os.path.join(args.out, "aem_ecb"), overwrite=True)

    # A trained checkpoint rebuilds the model it was trained as (its stored options); without one, an
    # untrained reduced AVS360 (the published size is create_model("avs360")).
    if args.weights:
        avs360 = load_checkpoint(args.weights)
    else:
        avs360 = create_model("avs360", width_mult=0.25, clip_len=4, frame_size=(64, 128), face_size=32)
    predict_videos(avs360, [video], os.path.join(args.out, "avs360"), overwrite=True)
    print(f"maps and overlay.mp4 under {args.out}/aem_ecb and {args.out}/avs360")


if __name__ == "__main__":
    main()
