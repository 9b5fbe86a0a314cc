"""The one entry wrapper of every command-line tool (absl flags).

Each tool declares its flags at module level, as the Flax examples do, but in
its own ``flags.FlagValues`` (``FLAGS = cli.flag_values()``) rather than in
absl's global registry, so the tools share flag names (``--workdir``,
``--out``, ``--datasets``, ``--batch_size``) without colliding when several
are imported in one process (the tests, a notebook). The tool's module ends
with::

  @cli.command(FLAGS, 'python -m stargan_jax.tool')
  def main(args):        # args: the positional arguments left after the flags
    ...                  # reads FLAGS.workdir etc.; raises cli.UserError

  if __name__ == '__main__':
    sys.exit(main())

and ``main(['--workdir=runs/demo'])`` may be called in-process: it parses
the list, runs, and returns the exit status.

Errors: a user's mistake (a bad flag value, a missing file, a checkpoint that
does not fit) raises ``UserError`` (or a subclass) and prints one line,
``error: ...``, naming the flag or file, with exit status 2; unknown and
malformed flags are reported the same way. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

from absl import flags
from absl import logging


class UserError(Exception):
  """A mistake in what the user gave (flag, file, data): one ``error:`` line, exit 2."""


def flag_values() -> flags.FlagValues:
  """A tool's own flag registry, with absl's logging flags (``--verbosity``) added."""
  fv = flags.FlagValues()
  for name in ('verbosity', 'logtostderr', 'alsologtostderr'):
    if name in flags.FLAGS:
      fv[name] = flags.FLAGS[name]  # the same Flag object: setting it sets absl's
  return fv


def require(condition: bool, message: str) -> None:
  """Raises ``UserError(message)`` unless ``condition``: flag checks in one line each."""
  if not condition:
    raise UserError(message)


def quiet_libraries() -> None:
  """Only warnings from absl-logging libraries (Orbax, TFDS log every file at INFO)."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)


def parse(fv: flags.FlagValues, argv: Sequence[str], prog: str = '') -> list[str]:
  """Parses ``argv`` (without the program name) into ``fv``; returns the positionals.

  Every call starts from the defaults, so in-process calls do not leak
  values into each other. Raises ``UserError`` for unknown or bad flags.
  """
  fv.unparse_flags()
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # absl logging then stops warning about it
  if any(a in ('-h', '--help', '-help', '--helpfull') for a in argv):
    print(f'usage: {prog or "python -m ..."} [flags]\n\n{_help(fv)}')
    raise SystemExit(0)
  try:
    rest = fv([prog or 'prog', *argv])
  except flags.Error as e:
    missing = [n for n in fv if fv[n].value is None and
               f'Flag --{n} must have a value other than None' in str(e)]
    raise UserError(f'--{missing[0]} is required' if missing else str(e)) from None
  return rest[1:]


def _help(fv: flags.FlagValues) -> str:
  lines = []
  for name in sorted(fv):
    flag = fv[name]
    if name != flag.name or name in ('verbosity', 'logtostderr', 'alsologtostderr'):
      continue
    default = '' if flag.default is None else f' (default: {flag.default_as_str})'
    lines.append(f'  --{name}: {flag.help}{default}')
  return '\n'.join(lines)


def command(fv: flags.FlagValues, prog: str):
  """Decorates a tool's ``body(args) -> int | None`` into ``main(argv=None) -> int``.

  ``main`` parses ``argv`` (default ``sys.argv[1:]``) into ``fv``, calls the
  body with the positional arguments left over, and turns a ``UserError``
  into one ``error: ...`` line on stderr and status 2.
  """
  def wrap(body: Callable[[list[str]], int | None]) -> Callable[..., int]:
    @functools.wraps(body)
    def main(argv: Sequence[str] | None = None) -> int:
      try:
        rest = parse(fv, sys.argv[1:] if argv is None else list(argv), prog)
        status = body(rest)
      except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
      return 0 if status is None else int(status)
    return main
  return wrap


# -- flag groups that several tools share (same names, same meaning) -------------------------

def define_run_flags(fv: flags.FlagValues, data_dir: bool = True) -> None:
  """--workdir (required), --step, --use_ema and --data_dir: a saved run, as every tool reads it.

  ``data_dir=False`` for tools that read no dataset (translate, the web demo).
  """
  flags.DEFINE_string('workdir', None, 'Run directory of stargan_jax.main (its checkpoints/ '
                      'directory is accepted too).', flag_values=fv)
  flags.mark_flag_as_required('workdir', flag_values=fv)
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).', flag_values=fv)
  define_use_ema(fv)
  if data_dir:
    flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: the one the run was '
                        'trained with).', flag_values=fv)


def define_use_ema(fv: flags.FlagValues) -> None:
  flags.DEFINE_bool('use_ema', True, "Translate with G's EMA when the checkpoint has one "
                    "(trained with --g_ema_decay > 0); --use_ema=false (or --nouse_ema): the raw "
                    "G weights.", flag_values=fv)


# A floor on the classifier's steps: an epoch of a small set is too short to learn from
# (README, Evaluating a run).
CLASSIFIER_MIN_STEPS = 300


def define_classifier_flags(fv: flags.FlagValues) -> None:
  """The Table 3 domain classifier's flags (``classifier_settings`` reads them)."""
  flags.DEFINE_string('classifier_dir', None, 'Where the classifier checkpoints live (one '
                      'subdirectory per dataset and size); reused when present. Default: '
                      'WORKDIR/classifier. Share one directory between runs so that they are '
                      'judged by the same classifier.', flag_values=fv)
  flags.DEFINE_float('classifier_epochs', 1.0, 'Epochs over the real training images.',
                     flag_values=fv)
  flags.DEFINE_integer('classifier_min_steps', CLASSIFIER_MIN_STEPS, 'Train at least this many '
                       'steps whatever --classifier_epochs says (a small set such as RaFD\'s '
                       '~1,000 images has only 16 steps of batch 64 an epoch); 0: epochs alone.',
                       flag_values=fv)
  flags.DEFINE_integer('classifier_batch_size', 64, 'Classifier batch size.', flag_values=fv)
  flags.DEFINE_integer('classifier_width', None, 'Channels of the first stage (64 = ResNet-18 '
                       'as published). Default: 64 above 64 px, 16 at the built-in demo sizes.',
                       flag_values=fv)
  flags.DEFINE_float('classifier_lr', 1e-3, 'AdamW learning rate, cosine decay to 0.',
                     flag_values=fv)
  flags.DEFINE_integer('classifier_train_images', None, 'Train on only the first N training '
                       'images (default: all).', flag_values=fv)
  flags.DEFINE_bool('retrain_classifier', False, 'Train a new classifier even if one is saved.',
                    flag_values=fv)


def classifier_settings(fv: flags.FlagValues):
  """``classifier.TrainSettings`` from the flags; width 0 stands for the image size's default."""
  from stargan_jax.evaluation import classifier  # the classifier's stack only where it is used
  require(fv.classifier_epochs > 0,
          f'--classifier_epochs must be positive, got {fv.classifier_epochs}')
  require(fv.classifier_min_steps >= 0,
          f'--classifier_min_steps must be 0 or more, got {fv.classifier_min_steps}')
  require(fv.classifier_batch_size > 0,
          f'--classifier_batch_size must be positive, got {fv.classifier_batch_size}')
  require(fv.classifier_width is None or fv.classifier_width > 0,
          f'--classifier_width must be positive, got {fv.classifier_width}')
  return classifier.TrainSettings(
      epochs=fv.classifier_epochs, min_steps=fv.classifier_min_steps,
      batch_size=fv.classifier_batch_size,
      width=fv.classifier_width or 0, learning_rate=fv.classifier_lr,
      max_train_images=fv.classifier_train_images)
