// Load with the stock cosmjs client: each sender signs `count` MsgSends offline (explicit sequences)
// and broadcasts them with broadcast_tx_sync to its own node, as many wallets at once would.
//   node load.mjs <count> <recipient>   (stdin: JSON list of {"mnemonic", "rpc"})
// Prints one JSON object: the hashes accepted and the seconds spent broadcasting.
import { readFileSync } from "node:fs";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import { SigningStargateClient } from "@cosmjs/stargate";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";

const DENOM = "ujoule";
const FEE = { amount: [{ denom: DENOM, amount: "5000" }], gas: "200000" };

async function load(sender, count, recipient) {
  const wallet = await DirectSecp256k1HdWallet.fromMnemonic(sender.mnemonic, { prefix: "mxw" });
  const [{ address }] = await wallet.getAccounts();
  const client = await SigningStargateClient.connectWithSigner(sender.rpc, wallet);
  const { accountNumber, sequence } = await client.getSequence(address);
  const chainId = await client.getChainId();
  const message = { typeUrl: "/cosmos.bank.v1beta1.MsgSend",
                    value: { fromAddress: address, toAddress: recipient, amount: [{ denom: DENOM, amount: "1" }] } };
  const signed = [];
  for (let i = 0; i < count; i++) {
    signed.push(TxRaw.encode(await client.sign(address, [message], FEE, "", { accountNumber, sequence: sequence + i, chainId })).finish());
  }
  const hashes = [];
  for (const tx of signed) {
    hashes.push(await client.broadcastTxSync(tx));  // the tx hash, hex
  }
  client.disconnect();
  return hashes;
}

const [count, recipient] = process.argv.slice(2);
const senders = JSON.parse(readFileSync(0, "utf8"));
const start = performance.now();
const hashes = (await Promise.all(senders.map((s) => load(s, Number(count), recipient)))).flat();
console.log(JSON.stringify({ hashes, seconds: (performance.now() - start) / 1000 }));
