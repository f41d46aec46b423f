"""PyTorch twins of the text models: `transformer_shakespeare` (a GPT-2-style pre-LayerNorm decoder,
Radford et al. 2019; `gm_jax.models.transformer.GPT`) and `charrnn_shakespeare` (Karpathy's char-rnn
LSTM, Hochreiter & Schmidhuber 1997; `gm_jax.models.rnn.RNN` with `flax.linen.OptimizedLSTMCell`).

Written as a PyTorch zoo writes them: the GPT with `nn.Linear`, `nn.LayerNorm` and
`F.scaled_dot_product_attention(is_causal=True)` (nanoGPT's layout), the char-rnn with `nn.LSTM`.
The loss is gm_jax's: nats per window (sum of the per-character cross-entropies), batch mean.
The train step is the experiments' optimizer, less its learning-rate schedule (a scalar per step):
global-norm clipping at `config.grad_clip`, then AdamW (b2 0.99, decoupled weight decay on every
parameter, as `optax.adamw` without a mask) for the GPT and Adam for the LSTM.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import flops
from benchmarks.twins.common import Twin, adam, assign, dense_weight, t
from gm_jax.models.transformer import sinusoidal_positions


def linear(lin, p):
    assign(lin.weight, dense_weight(p["kernel"]))
    assign(lin.bias, t(p["bias"]))


def layer_norm(ln, p):
    assign(ln.weight, t(p["scale"]))
    assign(ln.bias, t(p["bias"]))


# -- GPT ---------------------------------------------------------------------------------------------

class Block(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)); Flax's LayerNorm epsilon (1e-6) and tanh-approximate GELU."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.ln_attn, self.ln_mlp = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.fc_out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):  # [N, T, d]
        n, s, d = x.shape
        # qkv features are laid out [3, heads, head_dim] (gm_jax reshapes to (n, t, 3, heads, hd))
        q, k, v = self.qkv(self.ln_attn(x)).view(n, s, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(n, s, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln_mlp(x)), approximate="tanh"))

    def load(self, p):
        layer_norm(self.ln_attn, p["ln_attn"]), layer_norm(self.ln_mlp, p["ln_mlp"])
        for name in ("qkv", "proj", "fc", "fc_out"):
            linear(getattr(self, name), p[name])


class GPT(nn.Module):
    """Token + position embeddings, pre-LN blocks, final LayerNorm, an untied linear read-out."""

    def __init__(self, vocab_size, block_size, dim, num_layers, num_heads, positions):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, dim)
        if positions == "learned":
            self.pos_emb = nn.Parameter(torch.zeros(block_size, dim))
        else:
            self.register_buffer("pos_emb", torch.from_numpy(sinusoidal_positions(block_size, dim)))
        self.learned = positions == "learned"
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens):  # long [N, T] -> logits [N, T, V]
        x = self.tok_emb(tokens) + self.pos_emb[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def load(self, p):
        assign(self.tok_emb.weight, t(p["tok_emb"]["embedding"]))
        if self.learned:
            assign(self.pos_emb, t(p["pos_emb"]))
        for i, block in enumerate(self.blocks):
            block.load(p[f"block_{i}"])
        layer_norm(self.ln_f, p["ln_f"]), linear(self.head, p["head"])


def _gpt(exp):
    c = exp.config
    if c.dropout > 0:  # the default has none; a twin with dropout would need gm_jax's masks for the check
        raise ValueError("the Transformer twin covers dropout = 0 (the default config)")
    return GPT(exp.vocab_size, c.block_size, c.dim, c.num_layers, c.num_heads, c.positions)


# -- char-rnn LSTM -----------------------------------------------------------------------------------

class CharLSTM(nn.Module):
    """Embedding -> `nn.LSTM` (batch_first) -> linear read-out, from the zero state.

    Flax's `OptimizedLSTMCell` has the same gates as `nn.LSTM` (i, f, g, o; sigmoid / tanh;
    c' = f c + i g, h' = o tanh(c')) but one bias per gate (on the hidden projection), where
    torch keeps two that only ever appear summed (b_ih + b_hh). `bias_ih_l{k}` takes Flax's bias
    and `bias_hh_l{k}` is turned into a zero buffer, so the parameters are exactly Flax's.
    """

    def __init__(self, vocab_size, embed_dim, hidden, num_layers):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True)
        for k in range(num_layers):
            delattr(self.lstm, f"bias_hh_l{k}")
            self.lstm.register_buffer(f"bias_hh_l{k}", torch.zeros(4 * hidden))
        self.lstm._init_flat_weights()  # re-read the weight list nn.LSTM hands to its kernel
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens):  # long [N, T] -> logits [N, T, V]
        return self.head(self.lstm(self.embed(tokens))[0])

    def load(self, p):
        assign(self.embed.weight, t(p["embed"]["embedding"]))
        for k in range(self.lstm.num_layers):
            cell = p[f"cell_{k}"]
            assign(getattr(self.lstm, f"weight_ih_l{k}"), gates(cell, "i", "kernel", dense_weight))
            assign(getattr(self.lstm, f"weight_hh_l{k}"), gates(cell, "h", "kernel", dense_weight))
            assign(getattr(self.lstm, f"bias_ih_l{k}"), gates(cell, "h", "bias", t))
        linear(self.head, p["head"])


def gates(cell, kind, leaf, f):
    """Flax's per-gate leaves `{kind}{gate}/{leaf}` stacked as torch's rows, gates in the order i, f, g, o."""
    return torch.cat([f(cell[f"{kind}{g}"][leaf]) for g in "ifgo"])


def _lstm(exp):
    c = exp.config
    if c.cell != "lstm":
        raise ValueError("the char-rnn twin covers cell = 'lstm' (the default config)")
    return CharLSTM(exp.vocab_size, c.embed_dim, c.hidden, c.num_layers)


# -- loss and step -----------------------------------------------------------------------------------

def text_nll(m, b, keys):
    """Nats per window (sum over its characters), averaged over the batch."""
    logits = m(t(b["inputs"], torch.long))
    return F.cross_entropy(logits.flatten(0, 1), t(b["targets"], torch.long).flatten(), reduction="sum") / len(logits)


def clipped(loss):
    """A train step: `loss` backward, global-norm clipping (`optax.clip_by_global_norm`), optimizer step.
    The optimizer argument is the pair (torch optimizer, clip norm) that `_adamw` / `_adam` return."""

    def step(module, opt, batch):
        opt, clip = opt
        opt.zero_grad(set_to_none=True)
        loss(module, batch, None).backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        opt.step()

    return step


def _adamw(m, exp):
    c = exp.config
    return torch.optim.AdamW(m.parameters(), lr=c.learning_rate, betas=(0.9, 0.99), eps=1e-8,
                             weight_decay=c.weight_decay), c.grad_clip


def _adam(m, exp):
    return adam(m, exp), exp.config.grad_clip


TWINS = [
    Twin(name="transformer_shakespeare", experiment="transformer_shakespeare", build=_gpt,
         load=lambda m, p: m.load(p), loss=text_nll, step=clipped(text_nll), optimizer=_adamw),
    Twin(name="charrnn_shakespeare", experiment="charrnn_shakespeare", build=_lstm,
         load=lambda m, p: m.load(p), loss=text_nll, step=clipped(text_nll), optimizer=_adam,
         flops=flops.experiment_train_flops),
]
