module stompica

go 1.26

require (
	github.com/go-stomp/stomp/v3 v3.1.3 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0 // indirect
)
