// A wallet's send over the REST gateway alone, as Keplr does it with a suggested chain:
//   node rest_flow.mjs <keplr chain json file> <recipient> <amount in the fee denom>   (mnemonic on stdin)
// Reads the account and balance, simulates the tx for its gas, pays gas × 1.3 at the chain's average gas
// price step, signs with a DirectSecp256k1HdWallet, POSTs /cosmos/tx/v1beta1/txs, polls
// /cosmos/tx/v1beta1/txs/{hash} until the tx is in a block and prints one JSON object.
import { readFileSync } from "node:fs";
import { fromBase64, toBase64 } from "@cosmjs/encoding";
import { encodeSecp256k1Pubkey } from "@cosmjs/amino";
import { DirectSecp256k1HdWallet, Registry, encodePubkey, makeAuthInfoBytes, makeSignDoc } from "@cosmjs/proto-signing";
import { defaultRegistryTypes } from "@cosmjs/stargate";
import { TxRaw } from "cosmjs-types/cosmos/tx/v1beta1/tx";

const GAS_ADJUSTMENT = 1.3;
const POLL_MS = 200;
const POLL_LIMIT = 150;

async function rest(chain, path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(chain.rest + path, options);
  return { status: response.status, height: response.headers.get("x-cosmos-block-height"), json: await response.json() };
}

async function ok(chain, path, body) {
  const answer = await rest(chain, path, body);
  if (answer.status !== 200) throw new Error(`${path}: HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

async function balance(chain, address, denom) {
  return (await ok(chain, `/cosmos/bank/v1beta1/balances/${address}/by_denom?denom=${denom}`)).balance.amount;
}

function makeTx(pubkey, account, fee, gas, signatures, bodyBytes) {
  const authInfoBytes = makeAuthInfoBytes([{ pubkey, sequence: Number(account.sequence) }], fee, gas, undefined, undefined);
  return { authInfoBytes, bytes: TxRaw.encode(TxRaw.fromPartial({ bodyBytes, authInfoBytes, signatures })).finish() };
}

async function main() {
  const [chainFile, recipient, amount] = process.argv.slice(2);
  const chain = JSON.parse(readFileSync(chainFile, "utf8"));
  const mnemonic = readFileSync(0, "utf8").trim();
  const wallet = await DirectSecp256k1HdWallet.fromMnemonic(mnemonic, { prefix: chain.bech32Config.bech32PrefixAccAddr });
  const [{ address: sender, pubkey: rawPubkey }] = await wallet.getAccounts();
  const feeCurrency = chain.feeCurrencies[0];
  const denom = feeCurrency.coinMinimalDenom;

  const { account } = await ok(chain, `/cosmos/auth/v1beta1/accounts/${sender}`);
  const before = { [sender]: await balance(chain, sender, denom), [recipient]: await balance(chain, recipient, denom) };

  const registry = new Registry(defaultRegistryTypes);
  const messages = [{ typeUrl: "/cosmos.bank.v1beta1.MsgSend", value: { fromAddress: sender, toAddress: recipient, amount: [{ denom, amount }] } }];
  const bodyBytes = registry.encodeTxBody({ messages, memo: "rest flow" });
  const pubkey = encodePubkey(encodeSecp256k1Pubkey(rawPubkey));

  const simulation = makeTx(pubkey, account, [], 0, [new Uint8Array()], bodyBytes);
  const simulated = await ok(chain, "/cosmos/tx/v1beta1/simulate", { tx_bytes: toBase64(simulation.bytes) });
  const gas = Math.ceil(Number(simulated.gas_info.gas_used) * GAS_ADJUSTMENT);
  const fee = [{ denom, amount: String(Math.ceil(gas * feeCurrency.gasPriceStep.average)) }];

  const unsigned = makeTx(pubkey, account, fee, gas, [], bodyBytes);
  const signDoc = makeSignDoc(bodyBytes, unsigned.authInfoBytes, chain.chainId, Number(account.account_number));
  const { signature } = await wallet.signDirect(sender, signDoc);
  const signed = makeTx(pubkey, account, fee, gas, [fromBase64(signature.signature)], bodyBytes);
  const broadcast = await ok(chain, "/cosmos/tx/v1beta1/txs", { tx_bytes: toBase64(signed.bytes), mode: "BROADCAST_MODE_SYNC" });
  if (broadcast.tx_response.code !== 0) throw new Error(`CheckTx refused the tx: ${JSON.stringify(broadcast.tx_response)}`);

  const hash = broadcast.tx_response.txhash;
  let found, polls = 0, notFound;
  while (found === undefined) {
    if (++polls > POLL_LIMIT) throw new Error(`tx ${hash} not in a block after ${POLL_LIMIT} polls`);
    const answer = await rest(chain, `/cosmos/tx/v1beta1/txs/${hash}`);
    if (answer.status === 200) found = answer.json;
    else if (answer.status === 404) notFound = answer.json;
    else throw new Error(`GET txs/${hash}: HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
    if (found === undefined) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const after = { [sender]: await balance(chain, sender, denom), [recipient]: await balance(chain, recipient, denom) };
  console.log(JSON.stringify({
    sender, accountNumber: account.account_number, sequence: account.sequence, before, after,
    simulatedGas: simulated.gas_info.gas_used, gas, fee: fee[0].amount, hash, notFound,
    tx: { height: found.tx_response.height, code: found.tx_response.code, memo: found.tx.body.memo, gasUsed: found.tx_response.gas_used },
  }));
}

main().catch((error) => {
  console.error(`rest flow failed: ${error.stack || error}`);
  process.exit(1);
});
