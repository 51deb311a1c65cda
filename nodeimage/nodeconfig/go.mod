module github.com/berth-dev/berth/nodeimage/nodeconfig

go 1.26.0
