"""snnTorch side of the training-speed benchmark (plugins/learning/benches/train.rs).

The network of snnTorch's tutorial 5: 784-H-10 LIF (snn.Leaky, beta 0.95), the
image as input current every step, NUM_STEPS steps, loss = cross-entropy on the
output membrane at every step, Adam. Linear layers without bias, as evospike's.

  python snntorch_train.py THREADS HIDDEN STEPS BATCH BATCHES VARIANT

VARIANT `tutorial` computes fc1(x) inside the time loop as the tutorial does;
`hoisted` computes it once per batch (the input is the same every step), which is
what evospike does. Prints one JSON line: samples per second over BATCHES timed
batches after 3 warm-up batches.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import snntorch as snn

threads, hidden, steps, batch, batches, variant = (
    int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden, bias=False)
        self.lif1 = snn.Leaky(beta=0.95)
        self.fc2 = nn.Linear(hidden, 10, bias=False)
        self.lif2 = snn.Leaky(beta=0.95)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mems = []
        cur1_once = self.fc1(x) if variant == "hoisted" else None
        for _ in range(steps):
            cur1 = cur1_once if cur1_once is not None else self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            mems.append(mem2)
        return torch.stack(mems)


net = Net()
opt = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.9, 0.999))
loss_fn = nn.CrossEntropyLoss()
gen = torch.Generator().manual_seed(1)
data = torch.rand((batch * 8, 784), generator=gen)
labels = torch.randint(0, 10, (batch * 8,), generator=gen)


def train_batch(i):
    k = i % 8
    x, y = data[k * batch:(k + 1) * batch], labels[k * batch:(k + 1) * batch]
    mem = net(x)
    loss = torch.zeros(())
    for t in range(steps):
        loss = loss + loss_fn(mem[t], y)
    opt.zero_grad()
    loss.backward()
    opt.step()


for i in range(3):
    train_batch(i)
start = time.perf_counter()
for i in range(batches):
    train_batch(i)
seconds = time.perf_counter() - start
print(json.dumps({"samples_per_s": batch * batches / seconds, "threads": threads, "variant": variant,
                  "torch": torch.__version__, "snntorch": snn.__version__}))
