"""The error browser: the section of report.html that answers "on which clips, and why".

For every model and seed, a clickable emotion confusion matrix (dev or test); a cell lists its
utterances, each with the frames that model saw (thumbnails with timestamps), the clip's audio
in a player with the frame-aligned audio windows marked, the label and every model's prediction
side by side. A "disagreements" view lists the utterances where the best single stream and the
best fusion model (both chosen on dev) predict different emotions. Filters: split, model, seed,
class.

The page stays ONE self-contained file that works offline: the data is inline JSON, thumbnails
are base64 JPEG, audio is base64 Opus in WebM (decoded with PyAV; mono 16 kHz, 16 kbit/s: ~2 KB
per second). Only the first ``max_clips_per_cell`` clips of each cell (in manifest order, so
different models' cells mostly pick the same clips) carry media; the others are listed by name.
Everything comes from the per-example table (``examples``), the manifests (clip paths,
durations) and the frame stores the report rule declares.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
from PIL import Image

from ..labels import EMOTIONS
from ..video.store import FrameStore
from .inputs import PathLike
from .render import Section

AUDIO_RATE = 16000
AUDIO_BITRATE = 16000  # Opus speech stays intelligible at 16 kbit/s; keeps the page small
MAX_AUDIO_S = 20.0  # MELD has minutes-long clips; the player is for hearing the utterance
THUMB_PX = 64  # thumbnails: longest side (the demo's frames are 32 px, MELD's 224 px)
DEFAULT_CAP = 3  # config report.browser.max_clips_per_cell (schema default)
ANCHOR = "error-browser"


@dataclass
class BrowserSpec:
    """What the browser needs to know about the models (``spec.browser_params``)."""

    max_clips_per_cell: int = DEFAULT_CAP
    frame_sets: dict[str, str | None] = field(default_factory=dict)  # model -> set it saw
    windowed: list[str] = field(default_factory=list)  # models reading frame-aligned windows
    aligned_frame_set: str | None = None  # audio.aligned_frame_set: the windows' centres
    window_s: float = 1.0  # audio.window_s

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> BrowserSpec:
        return cls(**dict(params or {}))


# -- which clips carry media ------------------------------------------------------------------

def _ordered(table: pd.DataFrame, manifests: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``table`` in manifest order within each split (the cap then picks the same clips for
    every model whose cell holds them)."""
    pos = pd.concat([m[["clip_name"]].assign(split=s, _pos=np.arange(len(m)))
                     for s, m in manifests.items()])
    return (table.merge(pos, on=["split", "clip_name"], how="left")
            .sort_values(["split", "model", "seed", "_pos"], kind="stable"))


def disagreements(table: pd.DataFrame, single: str | None, fusion: str | None) -> pd.DataFrame:
    """Rows ``split, seed, clip_name, emotion, single, fusion`` where the two models' emotion
    predictions differ (seeds both have), in ``table`` order."""
    if not single or not fusion:
        return pd.DataFrame(columns=["split", "seed", "clip_name", "emotion", "single", "fusion"])
    key = ["split", "seed", "clip_name"]
    a = table.loc[table["model"] == single, [*key, "emotion", "pred_emotion"]]
    b = table.loc[table["model"] == fusion, [*key, "pred_emotion"]]
    both = a.merge(b, on=key, suffixes=("_s", "_f"))
    both = both[both["pred_emotion_s"] != both["pred_emotion_f"]]
    return both.rename(columns={"pred_emotion_s": "single", "pred_emotion_f": "fusion"})


def media_clips(table: pd.DataFrame, manifests: Mapping[str, pd.DataFrame], cap: int,
                single: str | None = None, fusion: str | None = None) -> dict[str, list[str]]:
    """Per split, the clips that get media: the first ``cap`` of every confusion cell of every
    model and seed, and of every true class among the disagreements, in manifest order."""
    t = _ordered(table, manifests)
    cells = t.groupby(["split", "model", "seed", "emotion", "pred_emotion"], sort=False).head(cap)
    dis = disagreements(t, single, fusion).groupby(["split", "seed", "emotion"]).head(cap)
    chosen = pd.concat([cells[["split", "clip_name"]], dis[["split", "clip_name"]]])
    per_split = chosen.groupby("split")["clip_name"].agg(set).to_dict()
    return {s: [c for c in m["clip_name"] if c in per_split.get(s, set())]
            for s, m in manifests.items()}


# -- media ------------------------------------------------------------------------------------

def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def thumbnail(frame: np.ndarray) -> str:
    """One RGB frame as a small JPEG data URI."""
    img = Image.fromarray(np.ascontiguousarray(frame))
    img.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=75)
    return _data_uri("image/jpeg", buf.getvalue())


def encode_audio(wave: np.ndarray, rate: int = AUDIO_RATE) -> str:
    """Mono float samples as an Opus/WebM data URI (bit-exact muxing: no random IDs, so the
    same clip gives the same bytes)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libopus", rate=rate, layout="mono")
        stream.bit_rate = AUDIO_BITRATE
        frame = av.AudioFrame.from_ndarray(
            np.clip(wave, -1, 1).astype(np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return _data_uri("audio/webm", buf.getvalue())


class NoAudio(Exception):
    """The clip has no audio stream (the page says so instead of showing a player)."""


def decode_audio(path: str, rate: int = AUDIO_RATE) -> np.ndarray:
    """The first ``MAX_AUDIO_S`` of a clip's first audio stream, mono float32 at ``rate``.

    PyAV's own resampler does the downmix and rate change: the player needs no bit-exact
    match with the features (avemo.audio.decode), and the report stage stays free of torch.
    """
    limit = int(MAX_AUDIO_S * rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks: list[np.ndarray] = []
    with av.open(path) as container:
        if not container.streams.audio:
            raise NoAudio("no_audio")
        for frame in container.decode(container.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if sum(map(len, chunks)) >= limit:
                break
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks)[:limit] if chunks else np.zeros(0, np.float32)


def clip_audio(clip_path: str) -> tuple[str | None, str]:
    """``(data URI, "")``, or ``(None, reason)`` when the clip has no usable audio."""
    if not clip_path or not Path(clip_path).is_file():
        return None, "no clip file"
    try:
        samples = decode_audio(clip_path)
    except NoAudio as exc:
        return None, str(exc)
    except (av.FFmpegError, OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if samples.size == 0:
        return None, "empty_audio"
    return encode_audio(samples), ""


def _stores(frames: Mapping[str, Mapping[str, PathLike]], split: str) -> dict[str, FrameStore]:
    return {fset: FrameStore(per_split[split]) for fset, per_split in frames.items()
            if split in per_split}


def clip_media(row: Mapping[str, Any], stores: Mapping[str, FrameStore], spec: BrowserSpec,
               sets: list[str]) -> dict[str, Any]:
    """One clip's media: audio, thumbnails per frame set in ``sets``, aligned windows."""
    audio, reason = clip_audio(str(row.get("clip_path") or ""))
    dur = float(row.get("duration_s") or 0.0)
    out: dict[str, Any] = {"dur": round(dur, 3) if np.isfinite(dur) else 0.0, "audio": audio,
                           "audio_reason": reason, "frames": {}, "windows": []}
    for fset in sets:
        store = stores.get(fset)
        if store is None or row["clip_name"] not in store.clip_names:
            continue
        imgs, t_s = store.frames(row["clip_name"])
        out["frames"][fset] = [[round(float(t), 2), thumbnail(img)] for img, t in zip(imgs, t_s,
                                                                                   strict=True)]
    aligned = stores.get(spec.aligned_frame_set or "")
    if aligned is not None and row["clip_name"] in aligned.clip_names:
        half = spec.window_s / 2
        _, t_s = aligned.frames(row["clip_name"])
        out["windows"] = [[round(max(0.0, float(t) - half), 2), round(float(t) + half, 2)]
                          for t in t_s]
    return out


# -- the page section -------------------------------------------------------------------------

def browser_data(table: pd.DataFrame, manifests: Mapping[str, pd.DataFrame],
                 frames: Mapping[str, Mapping[str, PathLike]], spec: BrowserSpec,
                 best: Mapping[str, str | None]) -> dict[str, Any]:
    """The JSON the page's script reads (predictions of every run, media of the chosen clips)."""
    single, fusion = best.get("single_stream"), best.get("fusion")
    models = list(dict.fromkeys(table["model"]))
    runs = table[["model", "seed"]].drop_duplicates()
    run_ids = [f"{m}/{s}" for m, s in runs.itertuples(index=False)]
    label_index = {lab: i for i, lab in enumerate(EMOTIONS)}
    chosen = media_clips(table, manifests, spec.max_clips_per_cell, single, fusion)
    sets = sorted({s for s in spec.frame_sets.values() if s} & set(frames))
    splits: dict[str, Any] = {}
    media: dict[str, Any] = {}
    for split in sorted(set(table["split"]), key=list(manifests).index):
        t = table[table["split"] == split]
        clips = [c for c in manifests[split]["clip_name"] if c in set(t["clip_name"])]
        labels = t.drop_duplicates("clip_name").set_index("clip_name")["emotion"]
        pred = t.pivot(index="clip_name", columns=["model", "seed"], values="pred_emotion")
        conf = t.assign(p=t[[f"p_emotion_{e}" for e in EMOTIONS]].max(axis=1)).pivot(
            index="clip_name", columns=["model", "seed"], values="p")
        pred, conf = pred.reindex(clips), conf.reindex(clips)
        splits[split] = {
            "clips": clips,
            "y": [label_index[labels[c]] for c in clips],
            "pred": {rid: [label_index.get(v, -1) for v in pred[(m, s)].fillna("")]
                     for rid, (m, s) in zip(run_ids, runs.itertuples(index=False), strict=True)},
            "conf": {rid: [round(float(v), 2) if v == v else None for v in conf[(m, s)]]
                     for rid, (m, s) in zip(run_ids, runs.itertuples(index=False), strict=True)},
        }
        stores = _stores(frames, split)
        rows = manifests[split].set_index("clip_name")
        flags = t.drop_duplicates("clip_name").set_index("clip_name")
        media[split] = {}
        for c in chosen.get(split, []):
            m = clip_media({"clip_name": c, **rows.loc[c].to_dict()}, stores, spec, sets)
            m["has_audio"], m["has_video"] = bool(flags.at[c, "has_audio"]), bool(
                flags.at[c, "has_video"])
            media[split][c] = m
    return {
        "labels": list(EMOTIONS),
        "cap": spec.max_clips_per_cell,
        "models": [{"name": m, "group": str(table.loc[table["model"] == m, "group"].iloc[0]),
                    "frames": spec.frame_sets.get(m), "windowed": m in spec.windowed}
                   for m in models],
        "runs": [{"id": r, "model": m, "seed": str(s)}
                 for r, (m, s) in zip(run_ids, runs.itertuples(index=False), strict=True)],
        "splits": splits,
        "media": media,
        "best": {"single_stream": single, "fusion": fusion},
        "aligned_set": spec.aligned_frame_set,
        "window_s": spec.window_s,
    }


def _json_script(data: Any) -> str:
    # "</" would end the script element early; JSON allows "<\/".
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="eb-data">{text}</script>'


def browser_section(table: pd.DataFrame, manifests: Mapping[str, pd.DataFrame],
                    frames: Mapping[str, Mapping[str, PathLike]], spec: BrowserSpec,
                    best: Mapping[str, str | None], title: str) -> Section:
    """The report section: a short description (both formats, linking to the HTML anchor in
    report.md) and, in report.html only, the browser itself."""
    if table.empty:
        return Section(title, paragraphs=["No model predictions: the error browser is empty."])
    data = browser_data(table, manifests, frames, spec, best)
    n_media = sum(len(v) for v in data["media"].values())
    single, fusion = best.get("single_stream"), best.get("fusion")
    paragraphs = [
        f"[Open the error browser](report.html#{ANCHOR}) (in `report.html`, works offline): "
        "for each model and seed a clickable emotion confusion matrix (dev or test); a cell "
        "lists its utterances with the frames that model saw, the clip's audio with the "
        "frame-aligned windows marked, the label and every model's prediction. Media are "
        f"embedded for the first {spec.max_clips_per_cell} clips of each cell "
        f"(`report.browser.max_clips_per_cell`; {n_media} clips in all).",
        f"Disagreements view: best single stream `{single}` vs best fusion `{fusion}` (both "
        "chosen on dev). Every prediction is in `tables/predictions.parquet` (and `.csv`), "
        "one row per utterance, model and seed.",
    ]
    body = f'<div id="{ANCHOR}"><style>{_STYLE}</style>{_CONTROLS}{_json_script(data)}' \
           f"<script>{_SCRIPT}</script></div>"
    return Section(title, paragraphs=paragraphs, html=body)


_STYLE = """
#error-browser .eb-controls label{margin-right:1em}
#error-browser table.eb-cm td,#error-browser table.eb-cm th{text-align:center;min-width:3em}
#error-browser button.eb-cell{width:100%;cursor:pointer;border:0;background:#fde2e2}
#error-browser button.eb-diag{background:#d9f2d9}
#error-browser .eb-card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:.7em 0}
#error-browser .eb-frames{display:flex;flex-wrap:wrap;gap:4px}
#error-browser figure{margin:0;text-align:center;font-size:.75em}
#error-browser figure img{width:64px;image-rendering:pixelated;cursor:pointer}
#error-browser .eb-bar{position:relative;height:14px;background:#eee;margin:4px 0}
#error-browser .eb-win{position:absolute;top:0;height:14px;background:rgba(40,110,220,.35)}
#error-browser .eb-tick{position:absolute;top:0;height:14px;width:2px;background:#c33}
#error-browser .ok{background:#d9f2d9} #error-browser .bad{background:#fde2e2}
#error-browser .sel{outline:2px solid #333}
"""

_CONTROLS = """
<div class="eb-controls">
<label>split <select id="eb-split"></select></label>
<label>model <select id="eb-model"></select></label>
<label>seed <select id="eb-seed"></select></label>
<label>class <select id="eb-class"></select></label>
<label><input type="checkbox" id="eb-dis"> disagreements: best single stream vs best fusion
</label></div>
<div id="eb-matrix"></div><div id="eb-list"></div>
"""

# Plain JavaScript, no library: builds the matrix and the cards from the inline JSON.
_SCRIPT = r"""
(function(){
const D=JSON.parse(document.getElementById('eb-data').textContent), L=D.labels;
const $=id=>document.getElementById(id);
const esc=s=>String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const info=Object.fromEntries(D.models.map(m=>[m.name,m]));
function fill(sel,vals,names){sel.innerHTML=vals.map((v,i)=>'<option value="'+esc(v)+'">'+esc(names?names[i]:v)+'</option>').join('');}
const seedsOf=m=>D.runs.filter(r=>r.model===m).map(r=>r.seed);
fill($('eb-split'),Object.keys(D.splits));
fill($('eb-model'),D.models.map(m=>m.name),D.models.map(m=>m.name+' ('+m.group+')'));
fill($('eb-class'),['',...L],['all classes',...L]);
const B=D.best, disOK=B.single_stream&&B.fusion&&info[B.single_stream]&&info[B.fusion];
if(!disOK){$('eb-dis').disabled=true;}
function fillSeeds(){
  const dis=$('eb-dis').checked, m=$('eb-model').value;
  const s=dis?seedsOf(B.single_stream).filter(x=>seedsOf(B.fusion).includes(x)):seedsOf(m);
  fill($('eb-seed'),s);}
function predTable(S,i,hl){
  const seeds=[...new Set(D.runs.map(r=>r.seed))];
  let h='<table><tr><th>model</th>'+seeds.map(s=>'<th>seed '+esc(s)+'</th>').join('')+'</tr>';
  for(const m of D.models){
    h+='<tr><td>'+esc(m.name)+'</td>';
    for(const s of seeds){const id=m.name+'/'+s, p=(S.pred[id]||[])[i];
      if(p===undefined||p<0){h+='<td></td>';continue;}
      const c=S.conf[id][i];
      h+='<td class="'+(p===S.y[i]?'ok':'bad')+(hl.includes(id)?' sel':'')+'">'+L[p]+(c===null?'':' '+c.toFixed(2))+'</td>';}
    h+='</tr>';}
  return h+'</table>';}
function timeline(M,fs){
  const d=M.dur||1, pct=x=>Math.min(100,100*x/d).toFixed(2)+'%';
  let h='<div class="eb-bar" title="clip timeline: aligned audio windows (blue), frames this model saw (red)">';
  for(const w of M.windows)h+='<span class="eb-win" style="left:'+pct(w[0])+';width:'+pct(Math.min(w[1],d)-w[0])+'"></span>';
  for(const f of (fs&&M.frames[fs])||[])h+='<span class="eb-tick" style="left:'+pct(f[0])+'"></span>';
  return h+'</div>';}
function card(split,i,hl){
  const S=D.splits[split], name=S.clips[i], M=(D.media[split]||{})[name], model=hl[0].split('/')[0], mi=info[model];
  let h='<div class="eb-card" data-clip="'+esc(name)+'"><h4>'+esc(name)+' — label <b>'+L[S.y[i]]+'</b></h4>';
  h+=predTable(S,i,hl);
  if(!M)return h+'</div>';
  h+='<p>video '+(M.has_video?'usable':'missing')+', audio '+(M.has_audio?'usable':'masked')+', '+M.dur.toFixed(2)+' s</p>';
  const fs=mi.frames, fr=fs&&M.frames[fs];
  h+=fr?'<p>frames '+esc(model)+' saw (set <code>'+esc(fs)+'</code>):</p><div class="eb-frames">'+fr.map(f=>'<figure><img alt="frame at '+f[0]+' s" src="'+f[1]+'" data-t="'+f[0]+'"><figcaption>'+f[0].toFixed(2)+' s</figcaption></figure>').join('')+'</div>':'<p>'+esc(model)+' sees no frames.</p>';
  h+=M.audio?'<audio controls preload="metadata" src="'+M.audio+'"></audio>':'<p>no audio ('+esc(M.audio_reason)+')</p>';
  h+=timeline(M,fs);
  if(M.windows.length)h+='<p>aligned audio windows ('+D.window_s+' s centred on the <code>'+esc(D.aligned_set)+'</code> frames): '+M.windows.map(w=>w[0].toFixed(2)+'–'+w[1].toFixed(2)+' s').join(', ')+'. '+esc(model)+(mi.windowed?' reads these windows.':' does not read them'+(mi.group==='audio'?' (it hears the whole clip).':'.'))+'</p>';
  return h+'</div>';}
function list(split,idx,hl,title){
  const media=D.media[split]||{}, withM=idx.filter(i=>media[D.splits[split].clips[i]]), rest=idx.filter(i=>!media[D.splits[split].clips[i]]);
  let h='<h3>'+esc(title)+': '+idx.length+' utterance(s)</h3>'+withM.map(i=>card(split,i,hl)).join('');
  if(rest.length)h+='<p>Without embedded media (report.browser.max_clips_per_cell = '+D.cap+'): '+rest.map(i=>esc(D.splits[split].clips[i])).join(', ')+'</p>';
  $('eb-list').innerHTML=h;
  $('eb-list').querySelectorAll('img[data-t]').forEach(img=>img.onclick=()=>{
    const a=img.closest('.eb-card').querySelector('audio'); if(a){a.currentTime=+img.dataset.t; a.play().catch(()=>{});}});}
function render(){
  const split=$('eb-split').value, S=D.splits[split], seed=$('eb-seed').value, cls=$('eb-class').value;
  if($('eb-dis').checked){
    const a=B.single_stream+'/'+seed, b=B.fusion+'/'+seed, pa=S.pred[a]||[], pb=S.pred[b]||[];
    const idx=S.y.map((y,i)=>i).filter(i=>pa[i]>=0&&pb[i]>=0&&pa[i]!==pb[i]&&(!cls||L[S.y[i]]===cls));
    $('eb-matrix').innerHTML='';
    list(split,idx,[a,b],'Disagreements, '+split+', seed '+seed+': '+B.single_stream+' vs '+B.fusion);return;}
  const run=$('eb-model').value+'/'+seed, P=S.pred[run]||[], n=L.length;
  const cells=L.map(()=>L.map(()=>[]));
  S.y.forEach((y,i)=>{if(P[i]>=0)cells[y][P[i]].push(i);});
  let h='<table class="eb-cm"><tr><th>label \\ predicted</th>'+L.map(l=>'<th>'+l+'</th>').join('')+'</tr>';
  for(let r=0;r<n;r++){if(cls&&L[r]!==cls)continue;
    h+='<tr><th>'+L[r]+'</th>';
    for(let c=0;c<n;c++){const k=cells[r][c].length;
      h+='<td>'+(k?'<button class="eb-cell'+(r===c?' eb-diag':'')+'" data-r="'+r+'" data-c="'+c+'">'+k+'</button>':'')+'</td>';}
    h+='</tr>';}
  $('eb-matrix').innerHTML='<p>'+esc(run)+' on '+split+' (rows: label, columns: prediction; click a cell)</p>'+h+'</table>';
  $('eb-list').innerHTML='';
  $('eb-matrix').querySelectorAll('button.eb-cell').forEach(b=>b.onclick=()=>{
    const r=+b.dataset.r,c=+b.dataset.c; list(split,cells[r][c],[run],'label '+L[r]+', predicted '+L[c]+' by '+run);});}
$('eb-model').onchange=()=>{fillSeeds();render();};
$('eb-dis').onchange=()=>{fillSeeds();render();};
for(const id of ['eb-split','eb-seed','eb-class'])$(id).onchange=render;
fillSeeds();render();
})();
"""  # noqa: E501 (minified-style JavaScript, one statement a line)

