// Package passkeytest is a software WebAuthn authenticator for tests: an
// ECDSA P-256 key per credential, "none" attestation, and knobs to make
// each of the mistakes a relying party must refuse (another origin, a
// wrong RP ID, no user verification, a tampered signature, a sign count
// that goes backwards).
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Authenticator holds the credentials it created.
type Authenticator struct {
	// Origin is what the client data says (the page's origin).
	Origin string
	// RPID, when set, replaces the options' RP ID in the authenticator
	// data's hash.
	RPID string
	// NoUserVerification clears the UV flag.
	NoUserVerification bool
	// TamperSignature flips a bit of the assertion's signature.
	TamperSignature bool
	// Creds are the credentials, in creation order.
	Creds []*Credential
}

// Credential is one key pair.
type Credential struct {
	ID         []byte
	UserHandle []byte
	RPID       string
	Key        *ecdsa.PrivateKey
	// Counter is the last sign count; SetCounter moves it.
	Counter uint32
}

var b64 = base64.RawURLEncoding

// Create answers {"publicKey": PublicKeyCredentialCreationOptions} with a
// RegistrationResponseJSON.
func (a *Authenticator) Create(options []byte) ([]byte, error) {
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		return nil, fmt.Errorf("passkeytest: options: %w", err)
	}
	uh, err := b64.DecodeString(opts.PublicKey.User.ID)
	if err != nil {
		return nil, fmt.Errorf("passkeytest: user id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &Credential{ID: make([]byte, 16), UserHandle: uh, RPID: opts.PublicKey.RP.ID, Key: key}
	rand.Read(c.ID)
	ecdh, _ := key.PublicKey.ECDH()
	raw := ecdh.Bytes() // 0x04 | X | Y
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256), XCoord: raw[1:33], YCoord: raw[33:65],
	})
	if err != nil {
		return nil, err
	}
	authData := a.authData(c.RPID, 0x40, 0)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(c.ID)))
	authData = append(authData, c.ID...)
	authData = append(authData, cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, err
	}
	cd := a.clientData("webauthn.create", opts.PublicKey.Challenge)
	a.Creds = append(a.Creds, c)
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att),
			"transports": []string{"internal"},
		},
	})
}

// Get answers {"publicKey": PublicKeyCredentialRequestOptions} with an
// AuthenticationResponseJSON of credential c (nil: the newest), its
// counter raised by one.
func (a *Authenticator) Get(options []byte, c *Credential) ([]byte, error) {
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		return nil, fmt.Errorf("passkeytest: options: %w", err)
	}
	if c == nil {
		c = a.Creds[len(a.Creds)-1]
	}
	c.Counter++
	authData := a.authData(c.RPID, 0, c.Counter)
	cd := a.clientData("webauthn.get", opts.PublicKey.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, authData...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		return nil, err
	}
	if a.TamperSignature {
		sig[len(sig)-1] ^= 1
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(authData),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(c.UserHandle),
		},
	})
}

func (a *Authenticator) authData(rpID string, extra byte, counter uint32) []byte {
	if a.RPID != "" {
		rpID = a.RPID
	}
	h := sha256.Sum256([]byte(rpID))
	flags := byte(0x01) | extra // UP
	if !a.NoUserVerification {
		flags |= 0x04
	}
	d := append([]byte{}, h[:]...)
	d = append(d, flags)
	return binary.BigEndian.AppendUint32(d, counter)
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}
