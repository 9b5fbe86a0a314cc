"""Image files as the project reads them: which files are images, and the reference's crop.

One definition for the dataset builders (``stargan_jax.datasets``) and for
translating your own photos (``stargan_jax.translate``), so a file the builder
takes is a file translate takes, cropped the same way:

* ``IMAGE_EXTENSIONS`` / ``is_image_file``: what counts as an image file
  (case-insensitive extension; hidden files never do).
* ``open_rgb``: decode a path or encoded bytes to an RGB PIL image, with the
  EXIF orientation applied if asked; ``UnreadableImageError`` names the file.
* ``center_crop_box`` / ``crop_and_resize``: torchvision's ``CenterCrop``
  then ``Resize`` (bilinear), which on PIL images is PIL's crop box and
  bilinear resize, so prepared pixels are the reference's.

Pure PIL and numpy; no TensorFlow, no JAX.
"""

from __future__ import annotations

import io
import os

from PIL import Image, ImageOps

from stargan_jax import cli

# Everything PIL decodes that photo and dataset folders hold (a GIF is read as
# its first frame).
IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png', '.ppm', '.tif', '.tiff', '.webp')


class UnreadableImageError(cli.UserError, ValueError):
  """A file that cannot be decoded as an image (corrupt, truncated, not an image), naming it."""


def is_image_file(name: str) -> bool:
  """Whether a file name (or path) has an image extension and is not hidden."""
  return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith('.')


def open_rgb(source: str | bytes, name: str | None = None,
             exif_transpose: bool = True) -> Image.Image:
  """Decodes a path or encoded bytes to an RGB image, fully loaded.

  ``name`` is what the error calls the image (default: the path). A missing
  file raises ``FileNotFoundError``; anything PIL cannot decode (it raises
  OSError, SyntaxError, ValueError... for bad data) ``UnreadableImageError``.
  ``exif_transpose``: turn the pixels as the EXIF orientation says (phone
  photos need it; the reference does not do it).
  """
  try:
    with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as im:
      im.load()  # a truncated file fails here, not later
      if exif_transpose:
        im = ImageOps.exif_transpose(im)
      return im.convert('RGB')
  except FileNotFoundError:
    raise
  except Exception as e:
    what = name if name is not None else source if isinstance(source, str) else 'data'
    raise UnreadableImageError(f'cannot read image {what}: {type(e).__name__}: {e}') from e


def center_crop_box(width: int, height: int, crop_w: int,
                    crop_h: int | None = None) -> tuple[int, int, int, int]:
  """torchvision ``CenterCrop``'s box (left, top, right, bottom), with its rounding.

  ``crop_h`` defaults to ``crop_w`` (a square).
  """
  crop_h = crop_w if crop_h is None else crop_h
  top = int(round((height - crop_h) / 2.0))
  left = int(round((width - crop_w) / 2.0))
  return left, top, left + crop_w, top + crop_h


def crop_and_resize(im: Image.Image, image_size: int, crop_size: int | None = None) -> Image.Image:
  """The centred ``crop_size`` square (None: the largest centred square), resized bilinearly.

  The crop must fit in the image; what an image smaller than the crop means
  (an error at build time, the largest square in translate) is the caller's
  decision.
  """
  w, h = im.size
  side = min(w, h) if crop_size is None else crop_size
  if side > min(w, h):
    raise ValueError(f'a {side} px crop does not fit in a {w}x{h} image')
  im = im.crop(center_crop_box(w, h, side))
  if im.size != (image_size, image_size):
    im = im.resize((image_size, image_size), Image.BILINEAR)
  return im
