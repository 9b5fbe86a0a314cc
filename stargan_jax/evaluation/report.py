"""The evaluation's report: ``evaluation.md``, bar charts (PIL), the file set.

Turns the result dict of ``evaluation.protocol.evaluate`` into the markdown
tables and PNG charts written next to ``evaluation.json``; ``bar_chart`` and
``font`` are shared with the experiment scripts.
"""

from __future__ import annotations

import os

from PIL import Image, ImageDraw, ImageFont

from stargan_jax.evaluation import fid as fid_lib


def _pct(x) -> str:
  return '-' if x is None else f'{100 * x:.2f}%'


def _misreads(target: str | None, counts: dict) -> str:
  """'happy 16, disgusted 1': the classes other than ``target`` (all of them where
  None) with their counts, most often first."""
  wrong = sorted(((n, c) for n, c in counts.items() if n != target and c), key=lambda t: -t[1])
  return ', '.join(f'{n} {c}' for n, c in wrong) or '-'


def markdown(result: dict) -> str:
  p = result['parameters']
  lines = [f'# Evaluation of {result["workdir"]} (step {result["checkpoint_step"]})', '',
           f'Image size {result["image_size"]} px; parameters: G {p["G"]:,}, D {p["D"]:,}, '
           f'total {p["total"]:,} ({p["total"] / 1e6:.2f}M); translated with the '
           f'{"EMA of G" if result.get("generator_weights") == "ema" else "raw G weights"}.', '']
  for src, per_trg in result['translation'].items():
    for trg, e in per_trg.items():
      clf = result['classifier'][trg]
      rec = result['reconstruction'][src] if src == trg else None
      # The optional columns: (title, cell per target domain, cell of the overall row).
      cols = []
      if rec:
        cols.append(('L1 cycle error', lambda n: f'{rec["per_domain"][n]:.4f}',
                     f'**{rec["l1"]:.4f}**'))
      if e.get('read_as') is not None:
        cols.append(('missed translations read as',
                     lambda n: _misreads(n, e['read_as'].get(n, {})), ''))
      if e.get('missed_from') is not None:
        cols.append(('missed translations, by source class',
                     lambda n: _misreads(None, e['missed_from'].get(n, {})), ''))
      lines += [f'## {src} test images translated to {trg} domains', '',
                f'Classifier: ResNet-18 (width {clf["width"]}, {clf["stem"]} stem) trained on '
                f'{clf["train_images"]} real {trg} training images; error on real test images '
                f'{_pct(clf["real_test_error"])}. Rule: a translation is {e["rule"]}.', '',
                '| target domain | classification error (translated) | classifier error '
                '(real) |' + ''.join(f' {title} |' for title, _, _ in cols),
                '|---|---|---|' + '---|' * len(cols)]
      for name, err in e['per_domain'].items():
        real = clf['real_test_error_per_domain'].get(name)
        lines.append(f'| {name} | {_pct(err)} | {_pct(real)} |' +
                     ''.join(f' {cell(name)} |' for _, cell, _ in cols))
      row = f'| **overall** | **{_pct(e["error"])}** | **{_pct(clf["real_test_error"])}** |'
      lines += [row + ''.join(f' {total} |' if total else ' |' for _, _, total in cols), '']
      if 'all_attributes_error' in e:
        lines += [f'Every attribute read as the target vector: error '
                  f'{_pct(e["all_attributes_error"])}.', '']
  if result.get('pixel_readers'):
    lines += ['## Pixel readers (built-in datasets, no learned classifier)', '',
              '| source -> target | target reached | all labels right | content preserved | '
              'success |', '|---|---|---|---|---|']
    for src, r in result['pixel_readers'].items():
      for trg, a in r['translations'].items():
        lines.append(f'| {src} -> {trg} | {_pct(a["target_accuracy"])} | '
                     f'{_pct(a["all_labels_accuracy"])} | {_pct(a["content_preserved"])} | '
                     f'{_pct(a["success"])} |')
    lines.append('')
    for src, r in result['pixel_readers'].items():
      lines.append(f'Readers on real {src} test images: {_pct(r["real_image_accuracy"])} right.')
    lines.append('')
  return '\n'.join(lines)


def font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
    return ImageFont.load_default()


def bar_chart(title: str, names: list[str], values: list[float], path: str,
              reference: list[float | None] | None = None, max_value: float = 1.0,
              percent: bool = True) -> str:
  """A PNG bar chart drawn with PIL (values in [0, max_value], shown as percent).

  ``reference`` (optional, e.g. the classifier's error on real images) is
  drawn as a short black tick on each bar.
  """
  title_font, small = font(14), font(11)
  probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  slot = max(70, max(int(probe.textlength(n, font=small)) + 14 for n in names))
  left, right, top, bottom, height = 56, 20, 44, 46, 220
  width = max(left + right + slot * len(names),
              int(probe.textlength(title, font=title_font)) + left + 10,
              360)
  img = Image.new('RGB', (width, top + height + bottom), 'white')
  draw = ImageDraw.Draw(img)
  draw.text((left, 12), title, fill='black', font=title_font)
  for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
    y = top + height - int(frac * height)
    draw.line([(left, y), (left + slot * len(names), y)], fill=(220, 220, 220))
    label = f'{100 * frac * max_value:.0f}%' if percent else f'{frac * max_value:.0f}'
    draw.text((4, y - 7), label, fill='black', font=small)
  for k, (name, v) in enumerate(zip(names, values)):
    x0 = left + k * slot + slot // 6
    x1 = left + (k + 1) * slot - slot // 6
    h = int(round(min(max(v, 0.0), max_value) / max_value * height))
    draw.rectangle([x0, top + height - h, x1, top + height], fill=(66, 114, 196))
    draw.text((x0, top + height - h - 14), f'{100 * v:.1f}%', fill='black', font=small)
    if reference is not None and reference[k] is not None:
      ry = top + height - int(round(min(reference[k], max_value) / max_value * height))
      draw.line([(x0 - 4, ry), (x1 + 4, ry)], fill='black', width=2)
    draw.text((left + k * slot + 4, top + height + 6), name, fill='black', font=small)
  draw.line([(left, top), (left, top + height)], fill='black')
  if reference is not None:
    draw.text((left, top + height + 26), 'bars: translated images; black ticks: real images',
              fill=(90, 90, 90), font=small)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img.save(path)
  return path


def write_outputs(result: dict, out_dir: str) -> dict:
  os.makedirs(out_dir, exist_ok=True)
  plots = []
  several = sum(len(v) for v in result['translation'].values()) > 1
  for src, per_trg in result['translation'].items():
    for trg, e in per_trg.items():
      names = list(e['per_domain'])
      real = result['classifier'][trg]['real_test_error_per_domain']
      suffix = f'-{src}-to-{trg}' if several else ''
      scale = max([1e-9] + list(e['per_domain'].values()) + [v or 0.0 for v in real.values()])
      max_value = 1.0 if scale > 0.5 else (0.5 if scale > 0.25 else 0.25)
      plots.append(bar_chart(
          f'Classification error per target domain ({src} -> {trg}), step '
          f'{result["checkpoint_step"]}', names, [e['per_domain'][n] for n in names],
          os.path.join(out_dir, f'error_per_domain{suffix}.png'),
          reference=[real.get(n) for n in names] if src == trg else None, max_value=max_value))
  if result.get('fid'):
    for src, per_trg in result['fid']['results'].items():
      for trg, e in per_trg.items():
        names = [n for n, r in e['domains'].items() if r.get('fid') is not None]
        if not names:
          continue
        values = [e['domains'][n]['fid'] for n in names]
        floors = [e['domains'][n]['floor'] for n in names]
        suffix = f'-{src}-to-{trg}' if several else ''
        plots.append(bar_chart(
            f'FID per target domain ({src} -> {trg}), step {result["checkpoint_step"]}',
            names, values, os.path.join(out_dir, f'fid_per_domain{suffix}.png'),
            reference=floors, max_value=1.1 * max(values + floors), percent=False))
  md = os.path.join(out_dir, 'evaluation.md')
  with open(md, 'w') as f:
    f.write(markdown(result))
    if result.get('fid'):
      f.write('\n'.join(fid_lib.markdown_lines(result['fid']['results'])) + '\n')
  return {'json': os.path.join(out_dir, 'evaluation.json'), 'markdown': md, 'plots': plots}
